//! Why an email was not delivered, read from what the receiving server said.
//!
//! The evidence, strongest first:
//!
//! 1. The diagnostic text: receiving servers word their refusals in well-known ways (Gmail's
//!    `The email account that you tried to reach does not exist`, Microsoft's
//!    `RESOLVER.ADR.RecipientNotFound`, Yahoo's `This mailbox is disabled (554.30)`, Spamhaus
//!    listings, Postfix's `User unknown in virtual mailbox table`). Phrases are matched in an
//!    order that puts the specific before the general: a full mailbox before an unknown one, a
//!    blocklisted IP before spam content, an SPF failure before a policy refusal.
//! 2. The enhanced status code (RFC 3463, with the authentication codes of RFC 7372):
//!    `X.1.1` a bad mailbox, `X.2.2` a full one, `X.7.26` failed authentication, …
//! 3. The provider's own category (SES `bounceSubType`, SendGrid's `bounce_classification`,
//!    SparkPost's bounce class, Postmark's bounce type), as a hint.
//! 4. The basic reply code (RFC 5321): `552` storage, `421`/`45x` transient, `550` a mailbox
//!    that cannot be used.
//!
//! The kind is then tidings' own judgement: `hard` only when the address itself is bad (an
//! unknown or disabled mailbox, a domain that does not exist) and the server said so for good;
//! the address is fine when a message was too large, its content or the sender's reputation or
//! authentication was refused, or the server asked to slow down, so those are `soft` and do not
//! suppress the recipient. Where nothing decides, the provider's kind stands.

use crate::event::BounceKind;
pub use crate::event::BounceReason;

/// What a receiving server said about one message, as far as it is known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reply<'a> {
    /// The diagnostic text (`smtp; 550 5.1.1 <a@b>: Recipient address rejected: …`).
    pub text: Option<&'a str>,
    /// A code given apart from the text: `550`, `5.1.1`, `550 5.1.1`.
    pub code: Option<&'a str>,
    /// The provider's category of the failure (`NoEmail`, `Invalid Address`, bounce class `10`).
    pub hint: Option<&'a str>,
    /// The provider the reply came through: some hints are provider-specific numbers.
    pub provider: Option<&'a str>,
}

/// The reason and tidings' kind of one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    pub reason: BounceReason,
    pub kind: BounceKind,
}

/// Classifies a reply. `provider_kind` is the provider's own label, which stands where the reply
/// cannot decide between hard and soft.
pub fn classify(reply: &Reply<'_>, provider_kind: BounceKind) -> Classified {
    let text = reply.text.map(str::to_ascii_lowercase).unwrap_or_default();
    let code_text = reply.code.map(str::to_ascii_lowercase).unwrap_or_default();
    let enhanced = enhanced_code(&text).or_else(|| enhanced_code(&code_text));
    let basic = basic_code(&text).or_else(|| basic_code(&code_text));
    // The class of the reply: 5 permanent, 4 transient; the enhanced code's class first.
    let class = enhanced.map(|e| e.class).or(basic.map(|b| (b / 100) as u8));

    // A specific enhanced code (`5.1.1`) outranks the provider's category; the provider's
    // category outranks a generic one (`5.7.1`, delivery not authorized, for any cause).
    let generic = |e: &Enhanced| {
        e.subject == 7 && !matches!(e.detail, 7 | 13 | 14 | 20..=28 | 509 | 512 | 515 | 606..=649 | 700..=750)
    };
    let reason = by_text(&text)
        .or_else(|| enhanced.filter(|e| !generic(e)).and_then(by_enhanced))
        .or_else(|| reply.hint.and_then(|hint| by_hint(hint, reply.provider)))
        .or_else(|| enhanced.and_then(by_enhanced))
        .or_else(|| basic.and_then(by_basic))
        .or_else(|| weak_text(&text, class))
        .unwrap_or(match (class, provider_kind) {
            (Some(4), _) | (None, BounceKind::Soft) => BounceReason::TemporaryFailure,
            _ => BounceReason::Other,
        });

    let kind = match (reason, class) {
        // A server that says "try again" about a bad address is believed: it may be a
        // directory lookup that failed for now.
        (r, Some(4)) if r.is_about_the_address() => BounceKind::Soft,
        (r, _) if r.is_about_the_address() => BounceKind::Hard,
        (BounceReason::Other, Some(5)) if provider_kind == BounceKind::Undetermined => BounceKind::Undetermined,
        (BounceReason::Other, Some(4)) => BounceKind::Soft,
        (BounceReason::Other, _) => provider_kind,
        _ => BounceKind::Soft,
    };
    Classified { reason, kind }
}

/// An enhanced status code `class.subject.detail` (RFC 3463).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Enhanced {
    class: u8,
    subject: u16,
    detail: u16,
}

/// The first enhanced status code in `text` whose class is 2, 4 or 5, standing on its own
/// (not part of an IP address or a version number).
fn enhanced_code(text: &str) -> Option<Enhanced> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let starts_token = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'.');
        if matches!(c, b'2' | b'4' | b'5') && starts_token && bytes.get(i + 1) == Some(&b'.') {
            let rest = &text[i + 2..];
            let subject_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            if (1..=3).contains(&subject_len) && rest.as_bytes().get(subject_len) == Some(&b'.') {
                let after = &rest[subject_len + 1..];
                let detail_len = after.bytes().take_while(u8::is_ascii_digit).count();
                let ends_token = after.as_bytes().get(detail_len).is_none_or(|b| !(b.is_ascii_digit() || *b == b'.'));
                if (1..=3).contains(&detail_len) && ends_token {
                    let subject = rest[..subject_len].parse().ok()?;
                    let detail = after[..detail_len].parse().ok()?;
                    return Some(Enhanced { class: c - b'0', subject, detail });
                }
            }
        }
        i += 1;
    }
    None
}

/// The basic reply code: three digits (`[245][0-5][0-9]`) at the start of the reply, after an
/// optional `smtp;` type prefix, or after a `said:`/`replied:` of a relaying server.
fn basic_code(text: &str) -> Option<u16> {
    let mut candidates: Vec<&str> = vec![text.trim_start()];
    if let Some((_, rest)) = text.split_once(';') {
        candidates.push(rest.trim_start());
    }
    for marker in ["said:", "replied:", "response:", "answered:", "error:"] {
        if let Some((_, rest)) = text.split_once(marker) {
            candidates.push(rest.trim_start());
        }
    }
    candidates.into_iter().find_map(|s| {
        let digits = s.get(..3)?;
        let next = s.as_bytes().get(3);
        let code: u16 = digits.parse().ok()?;
        let well_formed = digits.bytes().all(|b| b.is_ascii_digit())
            && matches!(digits.as_bytes()[0], b'2' | b'4' | b'5')
            && next.is_none_or(|b| matches!(b, b' ' | b'-' | b'.' | b'\t'));
        well_formed.then_some(code)
    })
}

/// Phrases, in the order they are tried. Each group's phrases are specific enough to decide on
/// their own.
const PHRASES: &[(BounceReason, &[&str])] = &[
    // Unambiguous wordings of an unknown address, which other groups' words can appear in
    // (`not listed` would otherwise read as a blocklisting).
    (
        BounceReason::MailboxUnknown,
        &[
            "not listed",
            "recipientnotfound",
            "user unknown",
            "no such user",
            "unknown user",
            "not found by smtp address",
        ],
    ),
    // Retries given up, greylisting, a server that would not talk: the address was never
    // refused, whatever else the reply mentions.
    (
        BounceReason::TemporaryFailure,
        &[
            "maximum number of delivery attempts",
            "message expired",
            "delivery time expired",
            "greylist",
            "graylist",
            "grey-list",
            "delivery temporarily suspended",
        ],
    ),
    // Wordings that name one cause while mentioning another's words.
    (
        BounceReason::Other,
        &["too many hops", "mail loop", "routing loop", "loop detected", "rfc 5322", "rfc 2822", "8-bit data"],
    ),
    (
        BounceReason::ContentRejected,
        &[
            "blacklisted url",
            "blocklisted url",
            "blacklisted link",
            "uribl",
            "surbl",
            "url in message",
            "rejected due to spam",
        ],
    ),
    (
        BounceReason::RateLimited,
        &[
            "rate limit",
            "rate-limit",
            "ratelimit",
            "too quickly",
            "connection limit",
            "frequency limit",
            "submission quota",
            "receive limit",
            "per connection",
        ],
    ),
    // Refusals of the sender's own address (Postfix's `Sender address rejected: Domain not
    // found`): nothing is wrong with the recipient's.
    (
        BounceReason::PolicyRejected,
        &[
            "recipient preferences",
            "not authenticated for group",
            "not authenticated by organization",
            "sender address rejected",
            "sender rejected",
            "sender denied",
        ],
    ),
    (BounceReason::ReputationBlock, &["dynamic ip", "residential ip"]),
    (
        BounceReason::MailboxFull,
        &[
            "mailbox full",
            "mailbox is full",
            "mailbox has exceeded",
            "mailbox size limit",
            "over quota",
            "overquota",
            "over the quota",
            "quota exceeded",
            "exceeded its quota",
            "exceeded quota",
            "exceed the quota",
            "exceeds quota",
            "exceeds its quota",
            "quota full",
            "out of storage",
            "storage space",
            "exceeded storage",
            "storage allocation",
            "insufficient storage",
            "inbox is full",
            "inbox full",
            "mailfolder is full",
            "user is over",
            "account is full",
            "mailbox_full",
            "inboxfull",
            "full mailbox",
        ],
    ),
    (
        BounceReason::MessageTooLarge,
        &[
            "message size exceeds",
            "message too large",
            "message is too large",
            "message too big",
            "message is too big",
            "size exceeds",
            "exceeds size limit",
            "exceeds the maximum size",
            "exceeds the size limit",
            "exceeded the maximum size",
            "message length exceeds",
            "message size limit",
            "too large for",
            "maximum message size",
            "size limit exceeded",
        ],
    ),
    (
        BounceReason::AuthenticationFailed,
        &[
            "spf",
            "dkim",
            "dmarc",
            "unauthenticated",
            "not authenticated",
            "authentication fail",
            "failed authentication",
            "authentication level",
            "authentication check",
            "sender authentication",
            "ptr record",
            "reverse dns",
            "reverse-dns",
            "rdns",
            "reverse lookup",
            "does not have a ptr",
            "name lookup failed",
            "cannot find your hostname",
            "sender policy framework",
            "domainkeys",
        ],
    ),
    (
        BounceReason::ReputationBlock,
        &[
            "spamhaus",
            "isp blocked",
            "client host",
            "spamcop",
            "sorbs",
            "barracuda",
            "blocklist",
            "block list",
            "blacklist",
            "black list",
            "denylist",
            "deny list",
            "dnsbl",
            "rbl",
            "blocked using",
            "listed at",
            "listed on",
            "listed in",
            "is listed",
            "are listed",
            "reputation",
            "banned sending ip",
            "originating from your ip",
            "originating from your spf",
            "originating from your dkim",
            "unsolicited mail originating",
            "from your ip",
            "your ip address",
            "ip address has been blocked",
            "ip has been blocked",
            "client host blocked",
            "client host rejected: blocked",
            "blocked by",
            "tss04",
            "tsss04",
            "ts04",
            "s3150",
            "s3140",
            "s3114",
            "poor sending",
            "5.7.606",
            "5.7.750",
            "not allowed to send from",
            "sender ip",
            "ip is blocked",
        ],
    ),
    (
        BounceReason::MailboxDisabled,
        &[
            "mailbox is disabled",
            "mailbox disabled",
            "account disabled",
            "account is disabled",
            "account has been disabled",
            "user disabled",
            "disabled user",
            "is disabled",
            "been disabled",
            "inactive",
            "manually deactivated",
            "deactivated",
            "account suspended",
            "account has been suspended",
            "mailbox suspended",
            "user suspended",
            "is suspended",
            "account is blocked",
            "temporary locked",
            "temporarily locked",
            "no longer active",
            "no longer available",
            "account expired",
            "expired account",
            "account has expired",
            "mailbox is frozen",
            "account is locked",
            "account locked",
            "554.30",
            "mailbox_disabled",
            "mailbox unavailable due to inactivity",
        ],
    ),
    (
        BounceReason::DomainUnknown,
        &[
            "host or domain name not found",
            "domain is not reachable",
            "domain not found",
            "domain name not found",
            "domain does not exist",
            "domain doesn't exist",
            "no such domain",
            "unknown domain",
            "domain is not valid",
            "invalid domain",
            "unrouteable domain",
            "unroutable domain",
            "host not found",
            "host unknown",
            "unknown host",
            "nxdomain",
            "no mx",
            "mx record",
            "null mx",
            "name service error",
            "name or service not known",
            "dns error",
            "dns lookup",
            "domain has no",
            "domain name does not",
        ],
    ),
    (
        BounceReason::MailboxUnknown,
        &[
            "user unknown",
            "unknown user",
            "no such user",
            "no such recipient",
            "no such mailbox",
            "no such address",
            "no such account",
            "does not exist",
            "doesn't exist",
            "does not exists",
            "not exist",
            "nonexistent",
            "non-existent",
            "recipient not found",
            "recipientnotfound",
            "user not found",
            "address not found",
            "mailbox not found",
            "account not found",
            "unknown recipient",
            "recipient unknown",
            "invalid recipient",
            "invalid mailbox",
            "invalid address",
            "address is invalid",
            "address is not valid",
            "invalid email address",
            "bad destination mailbox",
            "bad email address",
            "bad address",
            "not a valid mailbox",
            "not a valid recipient",
            "not a known user",
            "unrouteable address",
            "unroutable address",
            "no mailbox",
            "mailbox unknown",
            "addressee unknown",
            "user doesn't have",
            "user does not have",
            "not our customer",
            "no longer exists",
            "not found in",
            "unknown or illegal alias",
            "mailbox_unknown",
            "recipient address rejected: user",
            "recipient address rejected: unknown",
            "undeliverable address",
            "address rejected",
            "unknown local part",
            "recipient rejected",
        ],
    ),
    // A provider's own suppression list, whatever reason it gives for the entry.
    (BounceReason::PolicyRejected, &["suppression list", "suppressed"]),
    (
        BounceReason::RateLimited,
        &[
            "rate limit",
            "ratelimit",
            "rate-limit",
            "rate that prevents",
            "too many",
            "throttl",
            "unexpected volume",
            "temporarily deferred due to user complaints",
            "ts01",
            "ts02",
            "ts03",
            "exceeded the rate",
            "sending rate",
            "connection rate",
            "message rate",
            "receiving mail at a rate",
            "try to reduce",
            "slow down",
            "quota for",
            "daily sending quota",
            "sending limit",
            "limit exceeded",
            "exceeded the limit",
            "limits exceeded",
            "high volume",
        ],
    ),
    (
        BounceReason::ContentRejected,
        &[
            "spam",
            "junk",
            "virus",
            "malware",
            "malicious",
            "phishing",
            "infected",
            "unsolicited",
            "content",
            "attachment",
            "bulk mail",
            "url in",
            "urls in",
            "links in",
            "blocked link",
            "suspicious",
            "5.7.512",
            "message rejected due to",
            "message looks like",
        ],
    ),
    (
        BounceReason::PolicyRejected,
        &[
            "relay",
            "policy",
            "not permitted",
            "not allowed",
            "not authorized",
            "not authorised",
            "unauthorized",
            "access denied",
            "administrative",
            "administratively",
            "prohibited",
            "restricted",
            "refused by recipient",
            "recipient's domain does not accept",
            "sender denied",
            "sender rejected",
            "sender address rejected",
            "only accepts mail from",
            "on the suppression list",
            "suppression list",
            "suppressed",
        ],
    ),
    (
        BounceReason::TemporaryFailure,
        &[
            "greylist",
            "graylist",
            "grey-list",
            "try again later",
            "please try again",
            "try later",
            "temporarily",
            "temporary",
            "timed out",
            "timeout",
            "time-out",
            "connection refused",
            "connection reset",
            "connection dropped",
            "lost connection",
            "could not connect",
            "unable to connect",
            "service unavailable",
            "service not available",
            "resources temporarily",
            "server busy",
            "deferred",
            "expired",
            "retry timeout",
            "delivery time",
            "still trying",
        ],
    ),
];

/// The first group of [`PHRASES`] with a phrase in `text` (lowercase).
fn by_text(text: &str) -> Option<BounceReason> {
    if text.is_empty() {
        return None;
    }
    PHRASES.iter().find(|(_, phrases)| phrases.iter().any(|p| contains_phrase(text, p))).map(|(reason, _)| *reason)
}

/// Whether `phrase` occurs in `text` at word boundaries where the phrase begins or ends with a
/// letter or digit: `rbl` is not found in `verbless`, `spf` is found in `spf=fail`.
fn contains_phrase(text: &str, phrase: &str) -> bool {
    let starts_word = phrase.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric);
    let ends_word = phrase.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric);
    // Short alphanumeric tokens (`rbl`, `spf`, `ts01`) must stand alone; longer phrases may
    // be part of a word (`throttl` in `throttled`).
    let whole = phrase.len() <= 5;
    let mut from = 0;
    while let Some(at) = text[from..].find(phrase) {
        let start = from + at;
        let end = start + phrase.len();
        let before_ok = !starts_word || start == 0 || !text.as_bytes()[start - 1].is_ascii_alphanumeric();
        let after_ok = !whole || !ends_word || end == text.len() || !text.as_bytes()[end].is_ascii_alphanumeric();
        if before_ok && after_ok {
            return true;
        }
        from = start + 1;
        while !text.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

/// The reason an enhanced status code names, where it names one.
fn by_enhanced(code: Enhanced) -> Option<BounceReason> {
    use BounceReason::*;
    Some(match (code.subject, code.detail) {
        (1, 1) | (1, 3) | (1, 6) | (1, 10) => MailboxUnknown,
        (1, 2) => DomainUnknown,
        (1, 7) | (1, 8) => PolicyRejected,
        // Gmail and others answer 4.2.1 to a sender that is too fast; RFC 3463's "mailbox
        // disabled" is a permanent condition.
        (2, 1) if code.class == 4 => TemporaryFailure,
        (2, 1) => MailboxDisabled,
        (2, 2) => MailboxFull,
        (2, 3) | (3, 4) => MessageTooLarge,
        (3, 0..=2) | (3, 5) => TemporaryFailure,
        (4, 4) => DomainUnknown,
        (4, 1) | (4, 2) | (4, 7) if code.class == 4 => TemporaryFailure,
        (4, 3) | (4, 5) => TemporaryFailure,
        (4, 7) => TemporaryFailure,
        (5, 3) => RateLimited,
        (6, _) => ContentRejected,
        (7, 13) | (7, 14) => MailboxDisabled,
        (7, 20..=27) | (7, 509) | (7, 515) => AuthenticationFailed,
        (7, 28) => RateLimited,
        (7, 7) | (7, 512) => ContentRejected,
        (7, 606..=649) | (7, 750) => ReputationBlock,
        (7, 700..=749) => RateLimited,
        (7, 1) | (7, 0) | (7, 2) => PolicyRejected,
        (7, _) => PolicyRejected,
        _ => return None,
    })
}

/// The reason a provider's own category names. Words are matched case-insensitively; SparkPost's
/// bounce classes are numbers.
fn by_hint(hint: &str, provider: Option<&str>) -> Option<BounceReason> {
    use BounceReason::*;
    if provider == Some("sparkpost")
        && let Ok(class) = hint.trim().parse::<u16>()
    {
        return Some(match class {
            10 | 30 | 90 => MailboxUnknown,
            21 => DomainUnknown,
            22 => MailboxFull,
            23 => MessageTooLarge,
            24 | 20 | 70 => TemporaryFailure,
            25 | 54 | 80 => PolicyRejected,
            50 | 51 => ReputationBlock,
            52 | 53 => ContentRejected,
            _ => Other,
        });
    }
    let hint = hint.to_ascii_lowercase().replace(['_', '-'], " ");
    const HINTS: &[(&str, BounceReason)] = &[
        ("noemail", MailboxUnknown),
        ("no email", MailboxUnknown),
        ("invalid address", MailboxUnknown),
        ("bad email", MailboxUnknown),
        ("bademail", MailboxUnknown),
        ("hardbounce", MailboxUnknown),
        ("mailbox unavailable", MailboxDisabled),
        ("manually deactivated", PolicyRejected),
        ("mailboxfull", MailboxFull),
        ("mailbox full", MailboxFull),
        ("inboxfull", MailboxFull),
        ("inbox full", MailboxFull),
        ("messagetoolarge", MessageTooLarge),
        ("too large", MessageTooLarge),
        ("dnserror", DomainUnknown),
        ("dns error", DomainUnknown),
        ("contentrejected", ContentRejected),
        ("content", ContentRejected),
        ("attachment", ContentRejected),
        ("virus", ContentRejected),
        ("spam", ContentRejected),
        ("reputation", ReputationBlock),
        ("blocked", ReputationBlock),
        ("frequency", RateLimited),
        ("volume", RateLimited),
        ("throttl", RateLimited),
        ("suppress", PolicyRejected),
        ("unsubscribe", PolicyRejected),
        ("transient", TemporaryFailure),
        ("softbounce", TemporaryFailure),
        ("technical", TemporaryFailure),
    ];
    HINTS.iter().find(|(word, _)| hint.contains(word)).map(|(_, reason)| *reason)
}

/// The reason a basic reply code alone names, where it names one.
fn by_basic(code: u16) -> Option<BounceReason> {
    Some(match code {
        552 => BounceReason::MailboxFull,
        551 | 553 => BounceReason::MailboxUnknown,
        421 | 450 | 451 | 452 => BounceReason::TemporaryFailure,
        _ => return None,
    })
}

/// Wordings too vague to decide on before the codes, but better than nothing after them:
/// RFC 5321's `mailbox unavailable` is an unknown mailbox when said for good, a busy one
/// otherwise.
fn weak_text(text: &str, class: Option<u8>) -> Option<BounceReason> {
    if contains_phrase(text, "mailbox unavailable") || contains_phrase(text, "mailbox not available") {
        return Some(if class == Some(4) { BounceReason::TemporaryFailure } else { BounceReason::MailboxUnknown });
    }
    (class == Some(4)).then_some(BounceReason::TemporaryFailure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(text: &str) -> Classified {
        classify(&Reply { text: Some(text), ..Reply::default() }, BounceKind::Undetermined)
    }

    #[test]
    fn enhanced_codes_are_found_standing_alone_only() {
        assert_eq!(enhanced_code("550 5.1.1 <a@b.c> user unknown"), Some(Enhanced { class: 5, subject: 1, detail: 1 }));
        assert_eq!(enhanced_code("smtp; 550-5.7.26 unauthenticated").map(|e| e.detail), Some(26));
        assert_eq!(enhanced_code("host 192.0.2.1 said nothing"), None);
        assert_eq!(enhanced_code("version 2.4.6.1"), None);
        assert_eq!(enhanced_code("5.7.509 access denied").map(|e| e.detail), Some(509));
    }

    #[test]
    fn basic_codes_are_read_after_prefixes() {
        assert_eq!(basic_code("smtp; 552 quota"), Some(552));
        assert_eq!(basic_code("host mx.example.com[192.0.2.1] said: 450 try later"), Some(450));
        assert_eq!(basic_code("5500 things"), None);
        assert_eq!(basic_code("hello"), None);
    }

    #[test]
    fn specific_wordings_win_over_general_ones() {
        assert_eq!(
            of("552 5.2.2 The email account that you tried to reach is over quota").reason,
            BounceReason::MailboxFull
        );
        assert_eq!(
            of("550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using Spamhaus").reason,
            BounceReason::ReputationBlock
        );
        assert_eq!(
            of("550-5.7.26 This mail is unauthenticated, which poses a security risk to the sender").reason,
            BounceReason::AuthenticationFailed
        );
        assert_eq!(of("554 5.7.1 Message rejected as spam").reason, BounceReason::ContentRejected);
        assert_eq!(
            of("554 30 Sorry, your message to x@yahoo.com cannot be delivered. This mailbox is disabled (554.30).")
                .reason,
            BounceReason::MailboxDisabled
        );
    }

    #[test]
    fn a_refused_sender_address_is_not_the_recipient_s_fault() {
        let r = of("450 4.1.8 <bounce@mail.example.com>: Sender address rejected: Domain not found");
        assert_eq!((r.reason, r.kind), (BounceReason::PolicyRejected, BounceKind::Soft));
    }

    #[test]
    fn the_kind_is_hard_only_for_a_bad_address_said_for_good() {
        let unknown = of("550 5.1.1 user unknown");
        assert_eq!((unknown.reason, unknown.kind), (BounceReason::MailboxUnknown, BounceKind::Hard));
        assert_eq!(of("450 4.1.1 user unknown (directory lookup failed)").kind, BounceKind::Soft);
        assert_eq!(of("552 5.2.2 mailbox full").kind, BounceKind::Soft);
        assert_eq!(of("550 5.7.1 blocked using Spamhaus").kind, BounceKind::Soft);
        let vague = classify(&Reply { text: Some("550 rejected"), ..Reply::default() }, BounceKind::Hard);
        assert_eq!((vague.reason, vague.kind), (BounceReason::Other, BounceKind::Hard));
    }

    #[test]
    fn codes_and_hints_decide_where_the_text_does_not() {
        let r = classify(&Reply { code: Some("5.1.2"), ..Reply::default() }, BounceKind::Hard);
        assert_eq!(r.reason, BounceReason::DomainUnknown);
        let r = classify(&Reply { hint: Some("MailboxFull"), ..Reply::default() }, BounceKind::Soft);
        assert_eq!(r.reason, BounceReason::MailboxFull);
        let r =
            classify(&Reply { hint: Some("51"), provider: Some("sparkpost"), ..Reply::default() }, BounceKind::Soft);
        assert_eq!(r.reason, BounceReason::ReputationBlock);
        assert_eq!(of("").reason, BounceReason::Other);
        assert_eq!(of("421 come back").reason, BounceReason::TemporaryFailure);
    }

    #[test]
    fn phrases_respect_word_boundaries() {
        assert!(contains_phrase("x rbl y", "rbl"));
        assert!(!contains_phrase("verbless", "rbl"));
        assert!(contains_phrase("spf=fail", "spf"));
        assert!(contains_phrase("was throttled", "throttl"));
        assert!(!contains_phrase("ü rblx", "rbl"));
    }

    #[test]
    fn reasons_round_trip_through_their_names() {
        for reason in BounceReason::ALL {
            assert_eq!(reason.as_str().parse::<BounceReason>().unwrap(), reason);
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }
}
