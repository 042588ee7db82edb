//! Peak resident memory: `VmHWM` of `/proc/self/status`, per phase.
//!
//! Writing `5` to `/proc/self/clear_refs` resets the high-water mark to the current resident
//! size (Linux 4.0+), so each phase's peak is its own, not the largest of the phases before
//! it. Where the reset is refused, the figure is the peak of the process so far, and says so.

use std::fs;

/// Peak resident memory since [`PhasePeak::start`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peak {
    /// VmHWM in bytes.
    pub bytes: u64,
    /// Whether the mark was reset at the start (else it covers the whole process life).
    pub own: bool,
}

/// A phase whose peak memory is being watched.
pub struct PhasePeak {
    own: bool,
}

impl PhasePeak {
    pub fn start() -> Self {
        PhasePeak {
            own: fs::write("/proc/self/clear_refs", "5").is_ok(),
        }
    }

    /// The peak since the start, or `None` where `/proc/self/status` has no VmHWM.
    pub fn finish(self) -> Option<Peak> {
        vm_hwm().map(|bytes| Peak {
            bytes,
            own: self.own,
        })
    }
}

/// `VmHWM` (peak resident set size) of this process in bytes.
pub fn vm_hwm() -> Option<u64> {
    status_bytes(&fs::read_to_string("/proc/self/status").ok()?, "VmHWM:")
}

/// A `kB` field of a `/proc/<pid>/status` text (e.g. `VmRSS:`), in bytes.
pub fn status_bytes(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_high_water_mark() {
        assert_eq!(
            status_bytes("Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t 10 kB\n", "VmHWM:"),
            Some(2 << 20)
        );
        assert_eq!(status_bytes("Name:\tx\n", "VmHWM:"), None);
        let peak = PhasePeak::start().finish().expect("Linux has VmHWM");
        assert!(peak.bytes > 0);
    }
}
