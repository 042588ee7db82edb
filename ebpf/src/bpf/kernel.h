// SPDX-License-Identifier: GPL-2.0
//
// The few kernel types the tracker reads, declared with only the fields it touches.
// `preserve_access_index` makes every access a CO-RE relocation: libbpf (here aya) finds each
// field by name in the running kernel's BTF at load time, so the layout below need not match
// any kernel and no vmlinux.h has to be generated on the build machine.

#pragma once

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6

// include/net/tcp_states.h
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7
#define TCP_LISTEN 10

#define __core __attribute__((preserve_access_index))

struct ns_common {
	unsigned int inum;
} __core;

struct net {
	struct ns_common ns;
} __core;

typedef struct {
	struct net *net;
} possible_net_t;

struct in6_addr {
	__u8 bytes[16];
};

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __core;

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
} __core;

struct socket {
	short type;
	struct sock *sk;
} __core;

struct file {
	void *private_data;
} __core;

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __core;

struct files_struct {
	struct fdtable *fdt;
} __core;

struct task_struct {
	struct files_struct *files;
} __core;

// The tracepoints' records, as /sys/kernel/tracing/events/<category>/<name>/format prints
// them. These layouts are ABI: they are read directly, not relocated.
struct inet_sock_set_state_args {
	__u64 common;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

struct sys_exit_args {
	__u64 common;
	long syscall_nr;
	long ret;
};
