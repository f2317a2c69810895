//! Property tests for the input checks every backend shares: no string makes them panic,
//! a refusal always names its field, and what they accept fits the columns.

use proptest::prelude::*;
use sage_store::validate;

/// Strings near the DID grammar, so that the checks past the prefix are reached.
fn did_like() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "did:[a-zA-Z0-9é]{0,6}:[a-zA-Z0-9.:_%é😀 -]{0,12}", "did:sage:[0-9a-fA-F%]{0,6}",]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn dids_never_panic_and_refusals_name_the_field(text in did_like()) {
        match validate::did("client_did", &text) {
            Ok(()) => {
                prop_assert!(text.starts_with("did:") && text.len() <= validate::MAX_DID_LEN);
                prop_assert!(text.is_ascii(), "{}", text);
            }
            Err(e) => {
                prop_assert_eq!(e.field(), Some("client_did"));
                prop_assert!(!e.to_string().contains('\n'));
            }
        }
    }

    #[test]
    fn tokens_never_panic_and_accept_only_their_alphabet(text in any::<String>()) {
        match validate::token("nonce", &text) {
            Ok(()) => {
                prop_assert!(!text.is_empty() && text.len() <= validate::MAX_ID_LEN);
                prop_assert!(text.bytes().all(|b| b.is_ascii_graphic()), "{:?}", text);
            }
            Err(e) => prop_assert_eq!(e.field(), Some("nonce")),
        }
    }

    #[test]
    fn metadata_checks_never_panic(text in any::<String>()) {
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) {
            let _ = validate::metadata(Some(&value));
        }
    }
}
