//! Least privilege: once the connection tracker is loaded, the standalone `scope-collector`
//! gives up every capability its reporters do not use.
//!
//! Loading and attaching the eBPF programs is what needs the most (CAP_BPF and CAP_PERFMON,
//! or CAP_SYS_ADMIN before Linux 5.8). Afterwards the ring buffer and the lost-event map are
//! read through descriptors the process already holds (kernels before 6.5 with unprivileged
//! BPF disabled also want CAP_BPF or CAP_SYS_ADMIN for the map, and the latter is kept), so a
//! node collector keeps only:
//! - `CAP_SYS_PTRACE`: reading other processes' `/proc/<pid>/fd/*` links and `ns/net`
//!   (the kernel's ptrace read check, for other users' and non-dumpable processes);
//! - `CAP_DAC_READ_SEARCH`: listing other users' `/proc/<pid>/fd` directories (mode 0500);
//! - `CAP_NET_ADMIN`: asking conntrack over ctnetlink, which refuses every request without it;
//! - `CAP_SYS_ADMIN`: `setns` into a container's network namespace, to create the ctnetlink
//!   socket that asks that namespace's conntrack table.
//!
//! The cluster role reads no node and keeps none. Everything else goes from the effective,
//! permitted and inheritable sets, the ambient set is cleared, the bounding set is cut to the
//! kept ones (when CAP_SETPCAP allows it), and `no_new_privs` is set, so no `execve` can
//! win any back. Without CAP_DAC_OVERRIDE, a runtime socket that only another user (or a
//! group root is not in) may write cannot be connected to; every runtime's default is root's.
//!
//! Capabilities belong to each thread, and a thread starts with those of the thread that
//! created it. So the drop runs before the collector starts any thread (the Kafka producer's,
//! the endpoint reporter's, the blocking pool's), on the one thread of the binary's
//! current-thread runtime; if other threads exist already, they keep theirs, and that is
//! logged. `scope up` and `scope collector` share their process with other stages, or with a
//! multi-threaded runtime, and drop nothing.

use std::io;

use crate::{CollectorArgs, Error, Role};

/// A Linux capability, by number (`linux/capability.h`) and name.
#[derive(Debug)]
pub(crate) struct Capability {
    bit: u32,
    name: &'static str,
}

const CAP_DAC_READ_SEARCH: Capability = Capability {
    bit: 2,
    name: "CAP_DAC_READ_SEARCH",
};
const CAP_SETPCAP: u32 = 8;
const CAP_NET_ADMIN: Capability = Capability {
    bit: 12,
    name: "CAP_NET_ADMIN",
};
const CAP_SYS_PTRACE: Capability = Capability {
    bit: 19,
    name: "CAP_SYS_PTRACE",
};
const CAP_SYS_ADMIN: Capability = Capability {
    bit: 21,
    name: "CAP_SYS_ADMIN",
};

/// What a node collector keeps (see the module docs for why each).
const NODE: &[Capability] = &[
    CAP_DAC_READ_SEARCH,
    CAP_NET_ADMIN,
    CAP_SYS_PTRACE,
    CAP_SYS_ADMIN,
];

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, as two 32-bit halves.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The calling thread's (effective, permitted) sets.
fn current() -> io::Result<(u64, u64)> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget writes two `Data` for version 3, which `data` holds.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |low: u32, high: u32| u64::from(low) | u64::from(high) << 32;
    Ok((
        join(data[0].effective, data[1].effective),
        join(data[0].permitted, data[1].permitted),
    ))
}

/// Sets the calling thread's effective and permitted sets to `keep`, inheritable to none.
fn set(keep: u64) -> io::Result<()> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let half = |shift: u32| {
        let bits = (keep >> shift) as u32;
        Data {
            effective: bits,
            permitted: bits,
            inheritable: 0,
        }
    };
    let data = [half(0), half(32)];
    // SAFETY: capset reads two `Data` for version 3, which `data` holds.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `prctl` with integer arguments, as an `io::Result` of its return value.
fn prctl(option: libc::c_int, arg: libc::c_ulong) -> io::Result<libc::c_int> {
    // SAFETY: every option used here takes integer arguments only.
    let rc = unsafe { libc::prctl(option, arg, 0 as libc::c_ulong, 0 as libc::c_ulong, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// Removes every capability but `keep` from the bounding set. The kernel knows capabilities
/// up to a number this build may not: they are walked until it says there are no more.
fn cut_bounding_set(keep: u64) -> io::Result<()> {
    for bit in 0..64u32 {
        match prctl(libc::PR_CAPBSET_READ, bit.into()) {
            Ok(1) if keep & 1 << bit == 0 => {
                prctl(libc::PR_CAPBSET_DROP, bit.into())?;
            }
            Ok(_) => {}
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => break,
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Drops every capability the collector's role does not need, if `args` asks for it (only
/// the standalone binary does).
pub(crate) fn drop_unneeded(args: &CollectorArgs) -> Result<(), Error> {
    if !args.drop_capabilities {
        return Ok(());
    }
    // The cluster role only talks to the API server and the brokers.
    let keep = match args.role {
        Role::Node => NODE,
        Role::Cluster => &[],
    };
    drop_all_but(keep).map_err(Error::DropCapabilities)
}

/// Keeps `keep` (of what the thread holds) and drops every other capability, on the calling
/// thread and every thread it starts from now on. Without capabilities there is nothing to
/// drop, and that is said at debug.
fn drop_all_but(keep: &[Capability]) -> io::Result<()> {
    let (effective, permitted) = current()?;
    if permitted == 0 {
        tracing::debug!("running without capabilities: none to drop");
        return Ok(());
    }
    let wanted = keep.iter().fold(0u64, |set, cap| set | 1 << cap.bit);
    let kept = wanted & permitted;
    if effective & 1 << CAP_SETPCAP != 0 {
        cut_bounding_set(kept)?;
    } else {
        tracing::debug!("no CAP_SETPCAP: the bounding set stays as it is");
    }
    // EINVAL: a kernel before 4.3, which has no ambient set to clear.
    match prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    ) {
        Err(error) if error.raw_os_error() != Some(libc::EINVAL) => return Err(error),
        _ => {}
    }
    set(kept)?;
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)?;
    let names: Vec<&str> = keep
        .iter()
        .filter(|cap| kept & 1 << cap.bit != 0)
        .map(|cap| cap.name)
        .collect();
    tracing::info!(kept = ?names, "dropped every other capability, and set no_new_privs");
    let threads = std::fs::read_dir("/proc/self/task").map_or(1, |tasks| tasks.count());
    if threads > 1 {
        tracing::warn!(
            threads,
            "other threads were started before the drop and keep their capabilities"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread started after the drop has the kept set and no more, and no_new_privs;
    /// the test process (another thread) keeps its own.
    #[test]
    fn a_thread_keeps_only_the_set_it_asked_for() {
        let (_, before) = current().unwrap();
        let dropped = std::thread::spawn(move || {
            drop_all_but(&[CAP_NET_ADMIN]).unwrap();
            let child = std::thread::spawn(|| {
                let no_new_privs = prctl(libc::PR_GET_NO_NEW_PRIVS, 0).unwrap();
                (current().unwrap(), no_new_privs)
            });
            child.join().unwrap()
        })
        .join()
        .unwrap();
        let kept = before & 1 << CAP_NET_ADMIN.bit;
        assert_eq!(dropped, ((kept, kept), i32::from(before != 0)));
        assert_eq!(current().unwrap().1, before, "other threads keep theirs");
    }
}
