//! Recipients in one spelling, so that events from different providers about the same person
//! meet in one timeline and one suppression entry.

/// An email address trimmed and lowercased. A display-name form (`Jane <jane@example.com>`) is
/// reduced to the address. Text that is not an address is kept (lowercased) rather than
/// refused: a provider's odd data must not lose the event.
pub fn email(raw: &str) -> String {
    let raw = raw.trim();
    let address = match (raw.rfind('<'), raw.rfind('>')) {
        (Some(open), Some(close)) if open < close => &raw[open + 1..close],
        _ => raw,
    };
    address.trim().to_lowercase()
}

/// Every address in an address-list header (`To: "Doe, Jane" <jane@example.com>, bob@x.example`),
/// each as [`email`] reads it. Commas inside a quoted display name or inside `<…>` do not split.
pub fn emails(header: &str) -> Vec<String> {
    let mut addresses = Vec::new();
    let (mut quoted, mut angled, mut start) = (false, false, 0);
    for (i, c) in header.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angled = true,
            '>' if !quoted => angled = false,
            ',' if !quoted && !angled => {
                addresses.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    addresses.push(&header[start..]);
    addresses.into_iter().map(email).filter(|a| !a.is_empty()).collect()
}

/// A phone number in E.164 where the input allows it: separators removed, a leading `00`
/// becomes `+`, and a `whatsapp:`/`sms:`/`tel:` scheme prefix is dropped. Numbers given without a
/// country code cannot be completed here and are kept as their digits.
pub fn phone(raw: &str) -> String {
    let mut raw = raw.trim();
    for scheme in ["whatsapp:", "sms:", "tel:", "rcs:"] {
        if let Some(rest) = crate::auth::strip_prefix_ignore_case(raw, scheme) {
            raw = rest.trim();
        }
    }
    let plus = raw.starts_with('+');
    let digits: String = raw.chars().filter(|c| c.is_ascii_digit()).collect();
    let separators_only =
        raw.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.' | '/'));
    if digits.is_empty() || !separators_only {
        // Not a phone number (a short code with letters, an alias): keep it as given.
        return raw.to_owned();
    }
    if plus {
        format!("+{digits}")
    } else if let Some(rest) = digits.strip_prefix("00") {
        format!("+{rest}")
    } else {
        digits
    }
}

/// A number a provider writes in international format without the `+` (`14155550142`, as
/// WhatsApp, Plivo, Sinch and Infobip do): digits only, 8 to 15 of them, get the `+` of E.164;
/// anything shorter (a short code) or otherwise is read as [`phone`] reads it.
pub fn international(raw: &str) -> String {
    let raw = raw.trim();
    if (8..=15).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{raw}")
    } else {
        phone(raw)
    }
}

/// A recipient of either kind: an address when it contains `@`, else a phone number.
pub fn any(raw: &str) -> String {
    if raw.contains('@') { email(raw) } else { phone(raw) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_numbers_without_a_plus_get_one_and_short_codes_do_not() {
        assert_eq!(international("14155550142"), "+14155550142");
        assert_eq!(international("+1 415 555 0142"), "+14155550142");
        assert_eq!(international("72345"), "72345");
        assert_eq!(international("InfoSMS"), "InfoSMS");
    }

    #[test]
    fn emails_are_trimmed_lowercased_and_unwrapped() {
        assert_eq!(email("  John@Example.COM "), "john@example.com");
        assert_eq!(email("Jane Doe <Jane@Example.com>"), "jane@example.com");
        // The CM.com seed's scraped addresses must survive untouched apart from case.
        assert_eq!(email("[email protected]"), "[email protected]");
    }

    #[test]
    fn phones_become_e164() {
        assert_eq!(phone("+1 (555) 867-5310"), "+15558675310");
        assert_eq!(phone("whatsapp:+14155238886"), "+14155238886");
        assert_eq!(phone("0044 20 7946 0018"), "+442079460018");
        assert_eq!(phone("5558675310"), "5558675310");
        assert_eq!(phone("ACME"), "ACME");
        // A multi-byte character where a scheme prefix would end must not panic.
        assert_eq!(phone("watsapp:\u{FFFD}4155238886"), "watsapp:\u{FFFD}4155238886");
        assert_eq!(any("+15558675310"), "+15558675310");
        assert_eq!(any("A@B.C"), "a@b.c");
    }
}
