//! Command-line tools beside the server: `sipwake user` and `sipwake ctl`.

pub mod ctl;
pub mod user;
