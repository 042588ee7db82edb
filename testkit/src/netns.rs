//! Network namespaces as stand-ins for hosts: a test gets addresses, routes and firewall
//! rules of its own, and a tracker sees connections between "hosts" on one machine.

use std::process::Command;

use crate::process::run;

/// A network namespace with its loopback up, deleted when dropped. Needs root.
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `name`, first deleting one of that name that a killed run of the
    /// test left behind.
    pub fn new(name: String) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        run(&["ip", "netns", "add", &name]);
        let netns = Netns { name };
        run(&["ip", "-n", &netns.name, "link", "set", "lo", "up"]);
        netns
    }

    /// Its name, for `ip -n <name> ...` and `ip link ... netns <name>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `args` run inside this namespace; `ip netns exec` execs them, so the pid is theirs.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name]).args(args);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}
