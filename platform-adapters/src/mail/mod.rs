//! Mailers: implementations of [`platform_core::mail::Mailer`].

#[cfg(feature = "mail-smtp")]
mod smtp;

#[cfg(feature = "mail-smtp")]
#[cfg_attr(docsrs, doc(cfg(feature = "mail-smtp")))]
pub use smtp::{SmtpMailer, SmtpTls};
