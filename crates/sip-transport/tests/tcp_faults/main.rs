//! Fault-injection tests of the TCP transport: sends from threads outside
//! the runtime, write backpressure, and the whole-message deadline.

mod backpressure;
mod common;
mod deadlines;
mod foreign_thread;
