//! The conntrack netlink socket: created inside a network namespace, and one lookup over it.

use std::{
    fs::File,
    io,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
        unix::fs::MetadataExt,
    },
    path::PathBuf,
    time::{Duration, Instant},
};

use super::codec::{
    Entry, IPCTNL_MSG_CT_NEW, NLMSG_ERROR, Tuple, ctnetlink_type, decode_entry, encode_get,
    messages,
};

/// `SO_RCVTIMEO` of every socket: one `recv` never waits longer than this.
pub(super) const RECV_TIMEOUT: Duration = Duration::from_millis(100);
/// Upper bound of one lookup, even if stale replies keep arriving.
pub(super) const LOOKUP_DEADLINE: Duration = Duration::from_millis(200);

#[derive(Debug)]
pub(super) enum LookupError {
    /// The socket failed or timed out; it is dropped.
    Io(io::Error),
    /// The kernel answered with this errno (other than `ENOENT`).
    Kernel(i32),
    Malformed(&'static str),
}

/// Creates a ctnetlink socket inside the namespace at `ns_path`, on a helper thread so the
/// caller's thread keeps its namespace. The namespace must have inode `netns`: a pid reused
/// by a process elsewhere is refused rather than queried.
pub(super) fn open_in_netns(ns_path: PathBuf, netns: u64) -> io::Result<OwnedFd> {
    std::thread::Builder::new()
        .name("conntrack-netns".into())
        .spawn(move || {
            let ns = File::open(&ns_path)?;
            let ino = ns.metadata()?.ino();
            if ino != netns {
                return Err(io::Error::other(format!(
                    "the namespace is {ino}, not {netns} (pid reused?)"
                )));
            }
            // SAFETY: `ns` is an open namespace file; setns only changes this helper
            // thread's network namespace, and the thread ends right after.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            open_socket()
        })?
        .join()
        .map_err(|_| io::Error::other("the conntrack namespace thread panicked"))?
}

/// A `NETLINK_NETFILTER` socket in the calling thread's network namespace.
pub(super) fn open_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: RECV_TIMEOUT.as_micros() as libc::suseconds_t,
    };
    // SAFETY: the option value points to a timeval of the given size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Asks the kernel for the entry of `orig`: `Ok(None)` when there is none (`ENOENT`).
pub(super) fn lookup(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    seq: u32,
    orig: &Tuple,
) -> Result<Option<Entry>, LookupError> {
    let request = encode_get(seq, orig);
    let kernel = sockaddr_nl();
    // SAFETY: the buffer and address are valid for the lengths given.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
            (&raw const kernel).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(LookupError::Io(io::Error::last_os_error()));
    }
    let deadline = Instant::now() + LOOKUP_DEADLINE;
    let mut found: Option<Result<Entry, &'static str>> = None;
    loop {
        if Instant::now() > deadline {
            return Err(LookupError::Io(io::ErrorKind::TimedOut.into()));
        }
        let mut from = sockaddr_nl();
        let mut from_len = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: the buffer and address are valid for the lengths given; MSG_TRUNC makes
        // the return value the datagram's full length, checked against the buffer below.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_TRUNC,
                (&raw mut from).cast(),
                &mut from_len,
            )
        };
        if n < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(LookupError::Io(error));
        }
        if from.nl_pid != 0 {
            continue; // not from the kernel
        }
        let n = n as usize;
        if n > buf.len() {
            return Err(LookupError::Malformed("a reply was larger than the buffer"));
        }
        for message in messages(&buf[..n]).map_err(LookupError::Malformed)? {
            if message.seq != seq {
                continue; // the late answer of an earlier, timed-out lookup
            }
            match message.kind {
                NLMSG_ERROR => {
                    let code = message
                        .payload
                        .first_chunk::<4>()
                        .map(|b| i32::from_ne_bytes(*b))
                        .ok_or(LookupError::Malformed("short netlink error message"))?;
                    return match code {
                        0 => match found {
                            Some(Ok(entry)) => Ok(Some(entry)),
                            Some(Err(why)) => Err(LookupError::Malformed(why)),
                            None => Err(LookupError::Malformed("acknowledged without an entry")),
                        },
                        code if code == -libc::ENOENT => Ok(None),
                        code => Err(LookupError::Kernel(code.saturating_neg())),
                    };
                }
                kind if kind == ctnetlink_type(IPCTNL_MSG_CT_NEW) => {
                    found = Some(decode_entry(message.payload).and_then(|(_, orig, reply)| {
                        Ok(Entry {
                            orig: orig.ok_or("entry without an original tuple")?,
                            reply: reply.ok_or("entry without a reply tuple")?,
                        })
                    }));
                }
                _ => {}
            }
        }
    }
}

/// The kernel's netlink address.
pub(super) fn sockaddr_nl() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain data for which all zeroes is valid.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}
