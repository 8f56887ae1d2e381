//! Command-line tools beside the server: `sipwake user` and `sipwake ctl`.

pub mod ctl;
pub mod ctl_http;
pub mod ctl_table;
pub mod user;
