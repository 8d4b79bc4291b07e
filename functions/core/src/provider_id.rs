//! Which provider: the identifier every layer shares (routes, sources, events, signature
//! schemes). Kept apart from the provider implementations so the signature schemes and the
//! webhook model can name a provider without depending on them.

use std::fmt;
use std::str::FromStr;

/// The providers tidings reads. The text form is used in routes, config, the CLI and
/// `data.provider`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ProviderId {
    Ses,
    Sendgrid,
    Postmark,
    Mailgun,
    Resend,
    Twilio,
    Brevo,
    Sparkpost,
    Greenarrow,
    Cmcom,
    Activereach,
    Mailglyph,
    Whatsapp,
    Mailjet,
    Mailersend,
    Telnyx,
    Plivo,
    Mailtrap,
    Mandrill,
    Infobip,
    Sinch,
    Vonage,
    Postal,
    Unisender,
    Bird,
    Awssms,
}

impl ProviderId {
    pub const ALL: [ProviderId; 26] = [
        ProviderId::Ses,
        ProviderId::Sendgrid,
        ProviderId::Postmark,
        ProviderId::Mailgun,
        ProviderId::Resend,
        ProviderId::Twilio,
        ProviderId::Brevo,
        ProviderId::Sparkpost,
        ProviderId::Greenarrow,
        ProviderId::Cmcom,
        ProviderId::Activereach,
        ProviderId::Mailglyph,
        ProviderId::Whatsapp,
        ProviderId::Mailjet,
        ProviderId::Mailersend,
        ProviderId::Telnyx,
        ProviderId::Plivo,
        ProviderId::Mailtrap,
        ProviderId::Mandrill,
        ProviderId::Infobip,
        ProviderId::Sinch,
        ProviderId::Vonage,
        ProviderId::Postal,
        ProviderId::Unisender,
        ProviderId::Bird,
        ProviderId::Awssms,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::Ses => "ses",
            ProviderId::Sendgrid => "sendgrid",
            ProviderId::Postmark => "postmark",
            ProviderId::Mailgun => "mailgun",
            ProviderId::Resend => "resend",
            ProviderId::Twilio => "twilio",
            ProviderId::Brevo => "brevo",
            ProviderId::Sparkpost => "sparkpost",
            ProviderId::Greenarrow => "greenarrow",
            ProviderId::Cmcom => "cmcom",
            ProviderId::Activereach => "activereach",
            ProviderId::Mailglyph => "mailglyph",
            ProviderId::Whatsapp => "whatsapp",
            ProviderId::Mailjet => "mailjet",
            ProviderId::Mailersend => "mailersend",
            ProviderId::Telnyx => "telnyx",
            ProviderId::Plivo => "plivo",
            ProviderId::Mailtrap => "mailtrap",
            ProviderId::Mandrill => "mandrill",
            ProviderId::Infobip => "infobip",
            ProviderId::Sinch => "sinch",
            ProviderId::Vonage => "vonage",
            ProviderId::Postal => "postal",
            ProviderId::Unisender => "unisender",
            ProviderId::Bird => "bird",
            ProviderId::Awssms => "awssms",
        }
    }
}

impl ProviderId {
    /// The provider's name as its own product pages write it.
    pub fn display_name(self) -> &'static str {
        match self {
            ProviderId::Ses => "Amazon SES",
            ProviderId::Sendgrid => "SendGrid",
            ProviderId::Postmark => "Postmark",
            ProviderId::Mailgun => "Mailgun",
            ProviderId::Resend => "Resend",
            ProviderId::Twilio => "Twilio",
            ProviderId::Brevo => "Brevo",
            ProviderId::Sparkpost => "SparkPost",
            ProviderId::Greenarrow => "GreenArrow",
            ProviderId::Cmcom => "CM.com",
            ProviderId::Activereach => "Active Reach",
            ProviderId::Mailglyph => "MailGlyph",
            ProviderId::Whatsapp => "WhatsApp",
            ProviderId::Mailjet => "Mailjet",
            ProviderId::Mailersend => "MailerSend",
            ProviderId::Telnyx => "Telnyx",
            ProviderId::Plivo => "Plivo",
            ProviderId::Mailtrap => "Mailtrap",
            ProviderId::Mandrill => "Mailchimp Transactional",
            ProviderId::Infobip => "Infobip",
            ProviderId::Sinch => "Sinch",
            ProviderId::Vonage => "Vonage",
            ProviderId::Postal => "Postal",
            ProviderId::Unisender => "Unisender Go",
            ProviderId::Bird => "Bird",
            ProviderId::Awssms => "AWS End User Messaging SMS",
        }
    }

    /// The name in the ids of its deployment's resources (`IngestSendGrid`): letters only, and
    /// fixed once deployed, since a new id makes CloudFormation replace the resource.
    pub fn resource_name(self) -> &'static str {
        match self {
            ProviderId::Ses => "Ses",
            ProviderId::Sendgrid => "SendGrid",
            ProviderId::Postmark => "Postmark",
            ProviderId::Mailgun => "Mailgun",
            ProviderId::Resend => "Resend",
            ProviderId::Twilio => "Twilio",
            ProviderId::Brevo => "Brevo",
            ProviderId::Sparkpost => "SparkPost",
            ProviderId::Greenarrow => "GreenArrow",
            ProviderId::Cmcom => "CmCom",
            ProviderId::Activereach => "ActiveReach",
            ProviderId::Mailglyph => "MailGlyph",
            ProviderId::Whatsapp => "WhatsApp",
            ProviderId::Mailjet => "Mailjet",
            ProviderId::Mailersend => "MailerSend",
            ProviderId::Telnyx => "Telnyx",
            ProviderId::Plivo => "Plivo",
            ProviderId::Mailtrap => "Mailtrap",
            ProviderId::Mandrill => "Mandrill",
            ProviderId::Infobip => "Infobip",
            ProviderId::Sinch => "Sinch",
            ProviderId::Vonage => "Vonage",
            ProviderId::Postal => "Postal",
            ProviderId::Unisender => "UnisenderGo",
            ProviderId::Bird => "Bird",
            ProviderId::Awssms => "AwsSms",
        }
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderId::ALL.into_iter().find(|p| p.as_str() == s).ok_or_else(|| {
            let known: Vec<_> = ProviderId::ALL.iter().map(|p| p.as_str()).collect();
            format!("unknown provider {s:?} (known: {})", known.join(", "))
        })
    }
}
