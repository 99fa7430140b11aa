//! Any bytes as a message value: the decoder either rejects them with a kind the dead-letter
//! topic knows, or gives an event within the bounds that re-encodes to the same event, folds into a
//! state without panicking (or is rejected for an overflow, leaving the state as it was), and gives a
//! feature row.
#![no_main]

use chrono::NaiveDate;
use contract::bounds::Bounds;
use contract::event::{Rejection, TransactionEvent};
use contract::{CustomerState, ModelInputs, RowBuilder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let day = NaiveDate::from_ymd_opt(2011, 12, 10).unwrap();
    let bounds = Bounds::on(day);
    match TransactionEvent::decode(data, &bounds) {
        Err(rejection) => assert!(Rejection::KINDS.contains(&rejection.kind())),
        Ok(event) => {
            assert!(event.validate(&bounds).is_ok());
            let encoded = event.encode();
            let again = TransactionEvent::decode(&encoded, &bounds).expect("re-encodes");
            assert_eq!(again.event_id, event.event_id);
            assert_eq!(again.invoice_date, event.invoice_date);
            let mut state = CustomerState::default();
            let before = state.clone();
            match state.apply(&event) {
                Ok(_) => {
                    // Twice: the redelivery changes nothing.
                    let once = state.clone();
                    let _ = state.apply(&event);
                    assert_eq!(state, once);
                }
                Err(_) => assert_eq!(state, before),
            }
            let inputs = ModelInputs::example();
            let _ = RowBuilder::new(&inputs, day).row(&state);
        }
    }
});
