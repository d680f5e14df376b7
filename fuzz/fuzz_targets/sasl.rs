//! Fuzzes the SASL response decoders: `tidemark::kafka::wire::sasl::SaslHandshakeResponse` and
//! `SaslAuthenticateResponse` (the broker's SCRAM/PLAIN challenges arrive through the latter).
//!
//! Input: `[selector: u8][body...]`. Bit 0 of the selector picks the decoder tried first, the
//! rest picks its version (`MIN_VERSION + (selector >> 1) % range`); then the body is decoded by
//! both decoders at every supported version.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tidemark::kafka::wire::sasl::{SaslAuthenticateResponse, SaslHandshakeResponse};

fn handshake(body: &Bytes, version: i16) {
    let r = SaslHandshakeResponse::decode(body.clone(), version);
    let _ = r.is_ok();
}

fn authenticate(body: &Bytes, version: i16) {
    let r = SaslAuthenticateResponse::decode(body.clone(), version);
    let _ = r.is_ok();
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let body = Bytes::copy_from_slice(rest);
    let pick = i16::from(selector >> 1);
    let (hmin, hmax) = (
        SaslHandshakeResponse::MIN_VERSION,
        SaslHandshakeResponse::MAX_VERSION,
    );
    let (amin, amax) = (
        SaslAuthenticateResponse::MIN_VERSION,
        SaslAuthenticateResponse::MAX_VERSION,
    );
    if selector & 1 == 0 {
        handshake(&body, hmin + pick % (hmax - hmin + 1));
    } else {
        authenticate(&body, amin + pick % (amax - amin + 1));
    }
    for version in hmin..=hmax {
        handshake(&body, version);
    }
    for version in amin..=amax {
        authenticate(&body, version);
    }
});
