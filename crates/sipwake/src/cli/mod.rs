//! Command-line tools beside the server: `sipwake user`, `sipwake ctl`
//! and the hidden `sipwake man`.

pub mod ctl;
pub mod ctl_http;
pub mod ctl_table;
pub mod man;
pub mod user;
