//! Fuzz target `postgres_wire`: what a client sends the Postgres endpoint, from its first
//! byte. [`super::frames`] reads the startup packet (answering SSL and GSS requests) and
//! bounds every later message; pgwire then decodes what passed, as its server codec does.
//! Compiled by the fuzz target and, as the replay of `fuzz/corpus/postgres_wire/`, by the
//! renderer's tests.

use datafusion_postgres::pgwire::messages::{DecodeContext, PgWireFrontendMessage};
use tokio_util::bytes::BytesMut;

use super::frames;

/// Feeds `input` to the endpoint's readers; any outcome but a panic is fine.
pub fn replay(input: &[u8]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime needs no resources");
    runtime.block_on(async {
        let mut client = tokio::io::join(input, tokio::io::sink());
        let Ok(startup) = frames::read_startup(&mut client).await else {
            return;
        };
        let mut context = DecodeContext::default();
        context.awaiting_frontend_ssl = false;
        decode_all(&startup, &context);
        let (rest, _) = client.into_inner();
        let mut relayed = Vec::new();
        // An error ends the connection; pgwire still reads whatever was relayed before it.
        let _ = frames::relay_messages(rest, &mut relayed).await;
        context.awaiting_frontend_startup = false;
        decode_all(&relayed, &context);
    });
}

/// Decodes messages until the buffer runs out or one is refused, as pgwire's server codec
/// reads a connection; password messages as its SASL authentication reads them, the first
/// as an initial response.
fn decode_all(bytes: &[u8], context: &DecodeContext) {
    let mut buffer = BytesMut::from(bytes);
    let mut password_messages = 0;
    while let Ok(Some(message)) = PgWireFrontendMessage::decode(&mut buffer, context) {
        if let PgWireFrontendMessage::PasswordMessageFamily(password) = message {
            password_messages += 1;
            let _ = match password_messages {
                1 => password.into_sasl_initial_response().map(drop),
                _ => password.into_sasl_response().map(drop),
            };
        }
    }
}

// One crate's tests may load two harnesses (the collector's), each with this module.
#[cfg(test)]
#[allow(clippy::duplicate_mod)]
#[path = "corpus.rs"]
mod corpus;

#[cfg(test)]
#[test]
fn the_fuzz_corpus_replays_without_panicking() {
    corpus::replay_all(env!("CARGO_MANIFEST_DIR"), "postgres_wire", replay);
}
