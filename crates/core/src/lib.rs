//! The pure domain of meetwire: everything that decides *what* happens, with no I/O.
//!
//! Keeping the state machine, payload shapes, canonical JSON and signing here means they can be
//! tested exhaustively and cheaply, and that storage and HTTP code never re-derive the rules.

pub mod auto_join;
pub mod bot_fields;
pub mod calendar;
pub mod canonical;
pub mod delivery_key;
pub mod exact_integers;
pub mod ids;
pub mod payload;
pub mod record;
pub mod retry;
pub mod sealing;
pub mod signing;
pub mod state;
pub mod time;
pub mod trigger;
