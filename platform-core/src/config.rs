//! [`Config`]: the settings the web layer and the capabilities read,
//! resolved once when the platform is built (from the builder, then the
//! `PLATFORM_*` environment), so that no handler reads the environment.

/// Settings resolved at build time; see [`Platform::config`](crate::Platform::config).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// The site's public address for links in e-mails, without a trailing
    /// `/` (`PLATFORM_URL`; else `http://` + [`Config::addr`]). Never taken
    /// from a request's `Host` header, which a client chooses.
    pub public_url: String,
    /// The address `serve` listens on (`PLATFORM_ADDR`, default
    /// `127.0.0.1:8080`).
    pub addr: String,
    /// Whether cookies are `Secure` (always in production;
    /// `PLATFORM_SECURE_COOKIES=1` elsewhere).
    pub secure_cookies: bool,
    /// The networks allowed into the panel, a comma-separated CIDR list
    /// (`PLATFORM_ADMIN_ALLOW`; empty: everyone). Parsed by the panel's
    /// layer, which refuses to start on a malformed one.
    pub admin_allow: String,
    /// Whether the client address is taken from `X-Forwarded-For`
    /// (`PLATFORM_TRUST_FORWARDED=1`; only behind a proxy that sets it).
    pub trust_forwarded: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            public_url: "http://127.0.0.1:8080".to_owned(),
            addr: "127.0.0.1:8080".to_owned(),
            secure_cookies: false,
            admin_allow: String::new(),
            trust_forwarded: false,
        }
    }
}

impl Config {
    /// The settings from `env` (a lookup of `PLATFORM_*` variables; blank
    /// values count as unset) over `base`, for `production` or not.
    pub fn resolve(
        base: &Config,
        production: bool,
        env: impl Fn(&str) -> Option<String>,
    ) -> Config {
        let flag = |name: &str| env(name).is_some_and(|v| v.trim() == "1" || v.trim() == "true");
        let addr = env("PLATFORM_ADDR").unwrap_or_else(|| base.addr.clone());
        let public_url = env("PLATFORM_URL")
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .unwrap_or_else(|| {
                if base.public_url == Config::default().public_url {
                    format!("http://{addr}")
                } else {
                    base.public_url.clone()
                }
            });
        Config {
            public_url,
            secure_cookies: production || base.secure_cookies || flag("PLATFORM_SECURE_COOKIES"),
            admin_allow: env("PLATFORM_ADMIN_ALLOW").unwrap_or_else(|| base.admin_allow.clone()),
            trust_forwarded: base.trust_forwarded || flag("PLATFORM_TRUST_FORWARDED"),
            addr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_overrides_the_builder() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let c = Config::resolve(&Config::default(), false, vars(&[]));
        assert_eq!(c, Config::default());
        let c = Config::resolve(
            &Config::default(),
            false,
            vars(&[
                ("PLATFORM_ADDR", "0.0.0.0:9000"),
                ("PLATFORM_TRUST_FORWARDED", "1"),
            ]),
        );
        assert_eq!(c.public_url, "http://0.0.0.0:9000");
        assert!(c.trust_forwarded && !c.secure_cookies);
        let c = Config::resolve(
            &Config::default(),
            true,
            vars(&[("PLATFORM_URL", "https://app.example.com/")]),
        );
        assert_eq!(c.public_url, "https://app.example.com");
        assert!(c.secure_cookies, "always in production");
    }
}
