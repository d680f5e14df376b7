//! Fuzzes `tidemark::kafka::sasl::Exchange::step` with hostile server messages (the
//! `auth_bytes` of SaslAuthenticate responses): SCRAM-SHA-256/512 server-first and
//! server-final messages (tidemark's shape checks, then rsasl's parser), OAUTHBEARER server
//! error reports (JSON, RFC 7628), and whatever a server sends after PLAIN.
//!
//! Input: `[mechanism: u8][mode: u8]` then up to 3 server messages, each `[len: u16 BE][bytes]`.
//! The exchange is driven exactly as `sasl::authenticate` drives it: `step(None)`, then one
//! server message per `Step::Send`, stopping at `SendLast`, `Done` or an error.
//!
//! * mechanism % 4: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (static token).
//! * mode bit 0, SCRAM only: the server-first message is sent as `r=<client nonce><bytes>`, so
//!   the fuzzer can get past rsasl's nonce check (the client nonce is random) and reach the
//!   PBKDF2 / server-final code; otherwise every message is sent as it is.
//!
//! PBKDF2 cost: a server-first whose iteration count (as tidemark's check reads it: an `i=`
//! among the first three attributes) is above 64 is not run, only to keep executions fast —
//! counts up to `MAX_SCRAM_ITERATIONS` are legitimate and merely slow. Counts rsasl might read
//! from elsewhere are not filtered: such a bypass of the cap would show up as a timeout
//! (run this target with `-timeout=10`).
//!
//! Note: libfuzzer-sys's panic hook aborts on *any* panic, so a panic inside rsasl counts as a
//! crash here even though `Exchange::step` catches it (`catch_unwind`) and turns it into a
//! failed login in production.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tidemark::kafka::sasl::{
    Credentials, Exchange, Extensions, Mechanism, Sasl, Secret, Step, TokenSource,
};

const FAST_ITERATIONS: u32 = 64;

fn sasl(mechanism: Mechanism) -> Sasl {
    let credentials = match mechanism {
        Mechanism::OAuthBearer => Credentials::Token(
            TokenSource::Static(Secret::new("eyJhbGciOiJub25lIn0.e30.")),
            Extensions::default(),
        ),
        _ => Credentials::Password {
            username: "tidemark".to_owned(),
            password: Secret::new("pencil"),
        },
    };
    Sasl {
        mechanism,
        credentials,
    }
}

/// The iteration count tidemark's own check would read (first `i=` in the first 3 attributes).
fn iterations(message: &[u8]) -> Option<u32> {
    message
        .split(|b| *b == b',')
        .take(3)
        .find_map(|a| a.strip_prefix(b"i="))
        .and_then(|v| String::from_utf8_lossy(v).parse::<u32>().ok())
}

/// The client nonce of a SCRAM client-first message (`n,,n=user,r=<nonce>`).
fn client_nonce(client_first: &[u8]) -> &[u8] {
    client_first
        .split(|b| *b == b',')
        .find_map(|a| a.strip_prefix(b"r="))
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let [mech, mode, messages @ ..] = data else {
        return;
    };
    let mut rest: &[u8] = messages;
    let mechanism = Mechanism::ALL[usize::from(*mech) % Mechanism::ALL.len()];
    let scram = matches!(mechanism, Mechanism::ScramSha256 | Mechanism::ScramSha512);
    let Ok(mut exchange) = Exchange::start(&sasl(mechanism)) else {
        return;
    };
    let mut server: Option<Vec<u8>> = None;
    for step in 0..4 {
        let sent = match exchange.step(server.as_deref()) {
            Ok(Step::Send(m)) => m,
            Ok(Step::SendLast(_)) | Ok(Step::Done) => break,
            Err(e) => {
                let _ = e.len();
                break;
            }
        };
        let Some((len, tail)) = rest.split_first_chunk::<2>() else {
            break;
        };
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (message, tail) = tail.split_at(len);
        rest = tail;
        let mut next = Vec::with_capacity(message.len() + 64);
        if scram && step == 0 && mode & 1 == 1 {
            next.extend_from_slice(b"r=");
            next.extend_from_slice(client_nonce(&sent));
        }
        next.extend_from_slice(message);
        if scram && step == 0 && iterations(&next).is_some_and(|n| n > FAST_ITERATIONS) {
            return;
        }
        server = Some(next);
    }
    let _ = exchange.server_error().is_some();
});
