//! SMS and WhatsApp opt-outs by keyword: an inbound message whose whole text is an opt-out or
//! opt-in keyword changes whether its sender may be messaged. Carriers and providers answer
//! these keywords themselves (Twilio, Plivo, Telnyx, Sinch, Vonage and Infobip all honour the
//! same core set on long codes), so a provider that does not say so in a field of its own still
//! means it when the text is one of them.

use crate::event::Status;

/// The opt-out keywords US carriers and the large SMS providers honour by default.
pub const OPT_OUT_KEYWORDS: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"];

/// The keywords that opt a sender back in.
pub const OPT_IN_KEYWORDS: &[&str] = &["START", "YES", "UNSTOP"];

/// `Unsubscribed` for a text that is one opt-out keyword, whole (any case, surrounding spaces
/// ignored), `Resubscribed` for an opt-in keyword, `None` for any other text (`HELP` included).
pub fn by_keyword(text: Option<&str>) -> Option<Status> {
    let text = text?.trim();
    let is = |list: &[&str]| list.iter().any(|k| k.eq_ignore_ascii_case(text));
    if is(OPT_OUT_KEYWORDS) {
        Some(Status::Unsubscribed)
    } else if is(OPT_IN_KEYWORDS) {
        Some(Status::Resubscribed)
    } else {
        None
    }
}

/// The sentence documentation uses for the keyword rule.
pub const KEYWORDS_DOC: &str =
    "a text of STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE or OPTOUT (START, YES or UNSTOP opts back in)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_keyword_counts() {
        assert_eq!(by_keyword(Some(" stop ")), Some(Status::Unsubscribed));
        assert_eq!(by_keyword(Some("Unstop")), Some(Status::Resubscribed));
        assert_eq!(by_keyword(Some("please stop")), None);
        assert_eq!(by_keyword(Some("HELP")), None);
        assert_eq!(by_keyword(None), None);
    }
}
