//! The input topics, as the state tells them apart.

use scope_schemas::topics;

/// The two input topics; a host's state from each can be dropped on its own when the
/// partition it came from is revoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Input {
    Connections,
    Reports,
}

impl Input {
    pub const ALL: [Input; 2] = [Input::Connections, Input::Reports];

    pub fn topic(self) -> &'static str {
        match self {
            Input::Connections => topics::CONNECTIONS,
            Input::Reports => topics::REPORTS,
        }
    }

    pub fn from_topic(topic: &str) -> Option<Input> {
        match topic {
            topics::CONNECTIONS => Some(Input::Connections),
            topics::REPORTS => Some(Input::Reports),
            _ => None,
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            Input::Connections => 0,
            Input::Reports => 1,
        }
    }
}
