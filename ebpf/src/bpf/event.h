// SPDX-License-Identifier: GPL-2.0
//
// The record the tracker puts in the `events` ring buffer. `scope_ebpf::event::RawEvent`
// mirrors it field for field; change both together.

#pragma once

#define SCOPE_COMM_LEN 16

enum scope_event_kind {
	SCOPE_CONNECT = 1,
	SCOPE_ACCEPT = 2,
	SCOPE_CLOSE = 3,
};

// On an accept: the connection ended (closed by the peer, or reset) while it waited in the
// accept queue, so its close record came before this one and none follows.
#define SCOPE_ALREADY_CLOSED 1

struct scope_event {
	__u64 timestamp_ns; // CLOCK_MONOTONIC (bpf_ktime_get_ns)
	__u64 netns;        // inode of the socket's network namespace
	__u32 pid;          // tgid of the connecting or accepting process; 0 for close
	__u16 family;       // AF_INET or AF_INET6
	__u8 kind;          // enum scope_event_kind
	__u8 flags;         // SCOPE_ALREADY_CLOSED
	__u16 local_port;   // host byte order
	__u16 remote_port;  // host byte order
	__u8 local_addr[16]; // network byte order; IPv4 uses the first 4 bytes
	__u8 remote_addr[16];
	char comm[SCOPE_COMM_LEN]; // the process's comm, NUL-terminated unless 16 long
	__u32 pad1;
};
