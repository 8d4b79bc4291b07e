//! Which mailbox provider hosts an address, from its domain.
//!
//! The table lists the consumer domains of the large mailbox providers, the ones whose limits
//! senders answer to. A company's own domain is `other` unless the operator maps it (a
//! workspace's `mailbox_domains` setting): finding Google Workspace or Microsoft 365 behind a
//! custom domain takes an MX lookup, which tidings does not make per event.

use std::collections::BTreeMap;

/// Consumer domains, exact. Country variants of Yahoo, Hotmail, Outlook and Live are matched
/// by prefix in [`mailbox_provider`].
const DOMAINS: &[(&str, &str)] = &[
    ("gmail.com", "gmail"),
    ("googlemail.com", "gmail"),
    ("google.com", "gmail"),
    ("msn.com", "microsoft"),
    ("passport.com", "microsoft"),
    ("windowslive.com", "microsoft"),
    ("ymail.com", "yahoo"),
    ("rocketmail.com", "yahoo"),
    ("aol.com", "yahoo"),
    ("aim.com", "yahoo"),
    ("verizon.net", "yahoo"),
    ("frontier.com", "yahoo"),
    ("sbcglobal.net", "att"),
    ("att.net", "att"),
    ("bellsouth.net", "att"),
    ("icloud.com", "apple"),
    ("me.com", "apple"),
    ("mac.com", "apple"),
    ("gmx.com", "gmx"),
    ("gmx.net", "gmx"),
    ("gmx.de", "gmx"),
    ("gmx.at", "gmx"),
    ("gmx.ch", "gmx"),
    ("web.de", "gmx"),
    ("mail.com", "gmx"),
    ("mail.ru", "mailru"),
    ("inbox.ru", "mailru"),
    ("list.ru", "mailru"),
    ("bk.ru", "mailru"),
    ("yandex.ru", "yandex"),
    ("yandex.com", "yandex"),
    ("ya.ru", "yandex"),
    ("proton.me", "proton"),
    ("protonmail.com", "proton"),
    ("pm.me", "proton"),
    ("zoho.com", "zoho"),
    ("zohomail.com", "zoho"),
    ("fastmail.com", "fastmail"),
    ("fastmail.fm", "fastmail"),
    ("qq.com", "qq"),
    ("foxmail.com", "qq"),
    ("163.com", "netease"),
    ("126.com", "netease"),
    ("yeah.net", "netease"),
    ("comcast.net", "comcast"),
    ("xfinity.com", "comcast"),
];

/// The mailbox provider of `domain` (lowercase): the operator's mapping first, then the table.
pub fn mailbox_provider<'a>(domain: &str, operator: &'a BTreeMap<String, String>) -> &'a str {
    if let Some(provider) = operator.get(domain) {
        return provider.as_str();
    }
    if let Some((_, provider)) = DOMAINS.iter().find(|(d, _)| *d == domain) {
        return provider;
    }
    // hotmail.co.uk, outlook.de, live.fr, yahoo.co.jp, …: a brand's name and a country suffix.
    let (brand, rest) = domain.split_once('.').unwrap_or((domain, ""));
    if is_country_suffix(rest) {
        match brand {
            "hotmail" | "outlook" | "live" => return "microsoft",
            "yahoo" => return "yahoo",
            _ => {}
        }
    }
    "other"
}

/// `com`, `de`, `co.uk`, `com.br`: a generic or country top-level domain, with at most one
/// second-level label before a country code.
fn is_country_suffix(rest: &str) -> bool {
    let labels: Vec<&str> = rest.split('.').collect();
    let alpha = |l: &str| !l.is_empty() && l.bytes().all(|b| b.is_ascii_lowercase());
    match labels.as_slice() {
        [tld] => alpha(tld) && (tld.len() == 2 || ["com", "net", "org"].contains(tld)),
        [second, country] => alpha(second) && second.len() <= 3 && alpha(country) && country.len() == 2,
        _ => false,
    }
}

/// The domain of an email address, lowercase; `None` when it is not one.
pub fn domain_of(address: &str) -> Option<String> {
    let (_, domain) = address.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('>').trim_end_matches('.').to_ascii_lowercase();
    is_domain(&domain).then_some(domain)
}

/// Whether `domain` is a plausible DNS name: dotted labels of letters, digits and hyphens, at
/// most 253 bytes.
pub fn is_domain(domain: &str) -> bool {
    domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether `name` may name a mailbox provider in an operator's mapping: a lowercase token.
pub fn is_provider_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_domains_and_their_country_variants_are_known() {
        let none = BTreeMap::new();
        for (domain, provider) in [
            ("gmail.com", "gmail"),
            ("hotmail.co.uk", "microsoft"),
            ("outlook.com", "microsoft"),
            ("live.fr", "microsoft"),
            ("yahoo.co.jp", "yahoo"),
            ("yahoo.com", "yahoo"),
            ("aol.com", "yahoo"),
            ("icloud.com", "apple"),
            ("example.com", "other"),
            ("outlook.example.com", "other"),
            ("yahoo.evil.example", "other"),
        ] {
            assert_eq!(mailbox_provider(domain, &none), provider, "{domain}");
        }
        let operator = BTreeMap::from([("example.com".to_owned(), "microsoft".to_owned())]);
        assert_eq!(mailbox_provider("example.com", &operator), "microsoft");
    }

    #[test]
    fn domains_are_taken_from_addresses_only_when_well_formed() {
        assert_eq!(domain_of("A@Example.COM").as_deref(), Some("example.com"));
        assert_eq!(domain_of("a@b"), None);
        assert_eq!(domain_of("no-at-sign"), None);
        assert_eq!(domain_of("a@exa mple.com"), None);
    }
}
