// SPDX-License-Identifier: GPL-2.0
//
// Scope's connection tracker: one ring-buffer record per TCP connect, accept and close, with
// the process that made it and the network namespace it lives in.
//
// Built for kernels that offer tracepoints only (no kprobes, no fentry), so:
// - connect: `sock:inet_sock_set_state` CLOSE -> SYN_SENT runs in the connecting process (inside
//   connect(2)) but before a source port is picked, so the pid is parked per socket and the
//   record is sent at SYN_SENT -> ESTABLISHED, which usually runs in softirq context where the
//   current task means nothing.
// - accept: the accepted socket only meets the accepting process at accept(2)'s return, so
//   `syscalls:sys_exit_accept{,4}` walks current->files->fdt->fd[ret]->private_data->sk (CO-RE).
// - close: `inet_sock_set_state` out of ESTABLISHED, whichever side ends it (FIN_WAIT1 when this
//   end closes first, CLOSE_WAIT when the peer did, CLOSE on a reset). A half-closed
//   connection carries no more requests, and /proc readers (Weave Scope's too) only count
//   ESTABLISHED sockets, so both trackers agree on when a connection ends.
//
// Records that do not fit in the ring buffer are counted in `lost`, never dropped silently:
// user space resyncs from /proc when the count moves.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "kernel.h"
#include "event.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); // user space may resize it at load time
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

struct connecting {
	__u32 pid;
	char comm[SCOPE_COMM_LEN];
};

// Sockets in SYN_SENT, by socket address: who called connect(2). LRU so connects that never
// resolve (a socket freed without a state change we see) cannot fill it.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct connecting);
} connecting SEC(".maps");

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&lost, &zero);
	if (n)
		*n += 1;
}

// Wakes the reader only once a quarter of the ring is used: at thousands of events a second a
// wake-up per event costs the collector more than the events themselves. The reader also
// drains on a short timer, so a quiet host's events are not held back.
static __always_inline void submit(struct scope_event *e)
{
	__u64 used = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	__u64 size = bpf_ringbuf_query(&events, BPF_RB_RING_SIZE);
	bpf_ringbuf_submit(e, used >= size / 4 ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

static __always_inline __u64 netns_of(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

SEC("tracepoint/sock/inet_sock_set_state")
int inet_sock_set_state(struct inet_sock_set_state_args *ctx)
{
	if (ctx->protocol != IPPROTO_TCP)
		return 0;
	__u64 sk = (__u64)ctx->skaddr;
	int old = ctx->oldstate, new = ctx->newstate;

	if (old == TCP_CLOSE && new == TCP_SYN_SENT) {
		struct connecting who = {.pid = bpf_get_current_pid_tgid() >> 32};
		bpf_get_current_comm(&who.comm, sizeof(who.comm));
		bpf_map_update_elem(&connecting, &sk, &who, BPF_ANY);
		return 0;
	}
	if (old == TCP_SYN_SENT && new == TCP_CLOSE) {
		// The connect failed: there never was a connection.
		bpf_map_delete_elem(&connecting, &sk);
		return 0;
	}

	__u8 kind;
	struct connecting *who = 0;
	if (old == TCP_SYN_SENT && new == TCP_ESTABLISHED) {
		kind = SCOPE_CONNECT;
		who = bpf_map_lookup_elem(&connecting, &sk);
	} else if (old == TCP_ESTABLISHED) {
		kind = SCOPE_CLOSE;
	} else {
		return 0;
	}

	struct scope_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		if (who)
			bpf_map_delete_elem(&connecting, &sk);
		return 0;
	}
	e->timestamp_ns = bpf_ktime_get_ns();
	e->netns = netns_of((const struct sock *)ctx->skaddr);
	e->kind = kind;
	e->flags = 0;
	e->family = ctx->family;
	e->local_port = ctx->sport;
	e->remote_port = ctx->dport;
	if (ctx->family == AF_INET) {
		__builtin_memcpy(e->local_addr, ctx->saddr, 4);
		__builtin_memcpy(e->remote_addr, ctx->daddr, 4);
	} else {
		__builtin_memcpy(e->local_addr, ctx->saddr_v6, 16);
		__builtin_memcpy(e->remote_addr, ctx->daddr_v6, 16);
	}
	if (who) {
		e->pid = who->pid;
		__builtin_memcpy(e->comm, who->comm, SCOPE_COMM_LEN);
	} else {
		e->pid = 0;
		e->comm[0] = 0;
	}
	submit(e);
	if (who)
		bpf_map_delete_elem(&connecting, &sk);
	return 0;
}

static __always_inline int accepted(long fd)
{
	if (fd < 0)
		return 0;
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = 0;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return 0;
	struct socket *socket = BPF_CORE_READ(file, private_data);
	if (!socket || BPF_CORE_READ(socket, type) != SOCK_STREAM)
		return 0;
	struct sock *sk = BPF_CORE_READ(socket, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;

	struct scope_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost();
		return 0;
	}
	e->timestamp_ns = bpf_ktime_get_ns();
	e->netns = netns_of(sk);
	e->kind = SCOPE_ACCEPT;
	// Ended while it waited in the accept queue: its close record was sent before this one.
	e->flags = BPF_CORE_READ(sk, __sk_common.skc_state) != TCP_ESTABLISHED ? SCOPE_ALREADY_CLOSED : 0;
	e->family = family;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&e->comm, sizeof(e->comm));
	e->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		BPF_CORE_READ_INTO((__u32 *)e->local_addr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)e->remote_addr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&e->local_addr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&e->remote_addr, sk, __sk_common.skc_v6_daddr);
	}
	submit(e);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int sys_exit_accept4(struct sys_exit_args *ctx)
{
	return accepted(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int sys_exit_accept(struct sys_exit_args *ctx)
{
	return accepted(ctx->ret);
}
