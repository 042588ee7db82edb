//! The checks a decoded message must pass before it is applied.

use scope_schemas::{ConnectionEvent, ReportDelta};

/// Why a decoded connection event cannot be applied, if it cannot: the checks a message
/// from the wire must pass before
/// [`State::apply_connection`](super::State::apply_connection).
pub fn check_connection(ev: &ConnectionEvent) -> Result<(), &'static str> {
    if ev.host_id.is_empty() {
        return Err("empty host_id");
    }
    if ev.local_addr.is_empty() || ev.remote_addr.is_empty() {
        return Err("empty address");
    }
    if !(0..=65535).contains(&ev.local_port) || !(0..=65535).contains(&ev.remote_port) {
        return Err("port out of range");
    }
    Ok(())
}

/// Why a decoded report delta cannot be applied, if it cannot.
pub fn check_report(delta: &ReportDelta) -> Result<(), &'static str> {
    if delta.host_id.is_empty() {
        return Err("empty host_id");
    }
    if delta.reporter.is_empty() {
        return Err("empty reporter");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::fixtures::*;

    #[test]
    fn invalid_messages_are_recognised() {
        assert!(check_connection(&open(T0)).is_ok());
        assert!(
            check_connection(&ConnectionEvent {
                host_id: String::new(),
                ..open(T0)
            })
            .is_err()
        );
        assert!(
            check_connection(&ConnectionEvent {
                local_port: 70000,
                ..open(T0)
            })
            .is_err()
        );
        assert!(
            check_connection(&ConnectionEvent {
                remote_addr: String::new(),
                ..open(T0)
            })
            .is_err()
        );
        assert!(check_report(&delta("h1", "host", 1, true, T0, vec![])).is_ok());
        assert!(check_report(&delta("", "host", 1, true, T0, vec![])).is_err());
        assert!(check_report(&delta("h1", "", 1, true, T0, vec![])).is_err());
    }
}
