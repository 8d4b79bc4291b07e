//! Where a subscription's deliveries go: an HTTPS endpoint (a signed POST), an Amazon
//! EventBridge event bus (`PutEvents`) or an Amazon SQS queue (`SendMessage`).
//!
//! A subscription's `url` names it: an `https://` URL, or the ARN of the bus or queue. The ARN
//! carries everything a delivery needs: the partition and region pick the service endpoint,
//! the account and name the bus or queue (another account's works once its resource policy
//! lets the fan-out function's role send to it).

use crate::invalid::Invalid;

/// A subscription's destination, read from its `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// An `http(s)://` URL: deliveries are signed POSTs.
    Https(String),
    /// An EventBridge event bus or SQS queue.
    Aws(AwsTarget),
}

/// An AWS bus or queue, from its ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AwsTarget {
    pub kind: AwsKind,
    /// The ARN as given.
    pub arn: String,
    /// `aws`, `aws-cn`, `aws-us-gov`.
    pub partition: String,
    pub region: String,
    pub account: String,
    /// The bus's or queue's name.
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AwsKind {
    EventBus,
    Queue,
}

/// The longest SQS queue name (`.fifo` included).
const MAX_QUEUE_NAME: usize = 80;
/// The longest EventBridge event bus name.
const MAX_BUS_NAME: usize = 256;

impl AwsTarget {
    /// Whether the queue is FIFO (its name ends in `.fifo`): deliveries then carry a message
    /// group (the event's message) and a deduplication id.
    pub fn is_fifo(&self) -> bool {
        self.kind == AwsKind::Queue && self.name.ends_with(".fifo")
    }

    /// The queue's URL, as SQS's API names a queue.
    pub fn queue_url(&self) -> String {
        let domain = if self.partition == "aws-cn" { "amazonaws.com.cn" } else { "amazonaws.com" };
        format!("https://sqs.{}.{domain}/{}/{}", self.region, self.account, self.name)
    }

    /// The IAM action the fan-out function needs on [`AwsTarget::arn`].
    pub fn action(&self) -> &'static str {
        match self.kind {
            AwsKind::EventBus => "events:PutEvents",
            AwsKind::Queue => "sqs:SendMessage",
        }
    }
}

impl Destination {
    /// Reads a subscription's `url`, or says in one line what is wrong with it.
    pub fn parse(url: &str) -> Result<Destination, Invalid> {
        if url.starts_with("arn:") {
            return parse_arn(url).map(Destination::Aws);
        }
        let parsed = url::Url::parse(url).map_err(|e| {
            Invalid::new("url", format!("url {url:?} is neither a URL ({e}) nor an EventBridge bus or SQS queue ARN"))
        })?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(Invalid::new("url", format!("url must be http or https, or an ARN, not {}", parsed.scheme())));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Invalid::new("url", "url must not carry credentials: use a header instead"));
        }
        if parsed.host().is_none() {
            return Err(Invalid::new("url", "url has no host"));
        }
        Ok(Destination::Https(url.to_owned()))
    }

    pub fn aws(&self) -> Option<&AwsTarget> {
        match self {
            Destination::Aws(target) => Some(target),
            Destination::Https(_) => None,
        }
    }
}

fn parse_arn(arn: &str) -> Result<AwsTarget, Invalid> {
    let bad = |why: &str| Invalid::new("url", format!("url {arn:?}: {why}"));
    // arn:partition:service:region:account:resource (the resource may hold `:` in general,
    // but a bus's or queue's does not).
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, service, region, account, resource] = parts[..] else {
        return Err(bad("an ARN has six parts: arn:partition:service:region:account:resource"));
    };
    if !matches!(partition, "aws" | "aws-cn" | "aws-us-gov") {
        return Err(bad("the partition must be aws, aws-cn or aws-us-gov"));
    }
    let region_ok = !region.is_empty()
        && region.len() <= 32
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && region.bytes().any(|b| b.is_ascii_digit());
    if !region_ok {
        return Err(bad("the region must be a region name such as us-east-1"));
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the account must be 12 digits"));
    }
    let (kind, name) = match service {
        "events" => {
            let Some(name) = resource.strip_prefix("event-bus/") else {
                return Err(bad(
                    "an EventBridge destination is an event bus: arn:aws:events:REGION:ACCOUNT:event-bus/NAME",
                ));
            };
            let ok = !name.is_empty()
                && name.len() <= MAX_BUS_NAME
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b));
            if !ok {
                return Err(bad("an event bus name is 1 to 256 letters, digits and . _ - /"));
            }
            (AwsKind::EventBus, name)
        }
        "sqs" => {
            let stem = resource.strip_suffix(".fifo").unwrap_or(resource);
            let ok = !stem.is_empty()
                && resource.len() <= MAX_QUEUE_NAME
                && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b));
            if !ok {
                return Err(bad("a queue name is 1 to 80 letters, digits, - and _ (a FIFO queue's ends in .fifo)"));
            }
            (AwsKind::Queue, resource)
        }
        other => {
            return Err(bad(&format!(
                "{other} is not a destination: use an EventBridge event bus or an SQS queue ARN"
            )));
        }
    };
    Ok(AwsTarget {
        kind,
        arn: arn.to_owned(),
        partition: partition.to_owned(),
        region: region.to_owned(),
        account: account.to_owned(),
        name: name.to_owned(),
    })
}

/// A FIFO message group id or deduplication id from `value`: itself when SQS accepts it (1 to
/// 128 printable ASCII characters), else a SHA-256 of it (64 hex digits), so any provider's
/// message id keeps one group.
pub fn fifo_id(value: &str) -> String {
    let ok = !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        return value.to_owned();
    }
    hex::encode(ring::digest::digest(&ring::digest::SHA256, value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_urls_buses_and_queues() {
        assert_eq!(
            Destination::parse("https://hooks.example.com/x").unwrap(),
            Destination::Https("https://hooks.example.com/x".into())
        );
        let bus = Destination::parse("arn:aws:events:eu-west-1:123456789012:event-bus/orders").unwrap();
        let bus = bus.aws().unwrap();
        assert_eq!((bus.kind, bus.region.as_str(), bus.name.as_str()), (AwsKind::EventBus, "eu-west-1", "orders"));
        assert_eq!(bus.action(), "events:PutEvents");
        let queue = Destination::parse("arn:aws:sqs:us-east-1:123456789012:events.fifo").unwrap();
        let queue = queue.aws().unwrap();
        assert!(queue.is_fifo());
        assert_eq!(queue.queue_url(), "https://sqs.us-east-1.amazonaws.com/123456789012/events.fifo");
        let cn = Destination::parse("arn:aws-cn:sqs:cn-north-1:123456789012:q").unwrap();
        assert_eq!(cn.aws().unwrap().queue_url(), "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q");
        assert!(!Destination::parse("arn:aws:sqs:us-east-1:123456789012:q").unwrap().aws().unwrap().is_fifo());
    }

    #[test]
    fn refuses_other_arns_with_the_reason() {
        for (arn, why) in [
            ("arn:aws:sns:us-east-1:123456789012:topic", "not a destination"),
            ("arn:aws:sqs:us-east-1:12345:q", "12 digits"),
            ("arn:aws:sqs:US-EAST-1:123456789012:q", "region"),
            ("arn:aws:sqs:us-east-1:123456789012:bad.name", "queue name"),
            ("arn:aws:sqs:us-east-1:123456789012:", "queue name"),
            ("arn:aws:events:us-east-1:123456789012:rule/x", "event bus"),
            ("arn:aws:events:us-east-1:123456789012:event-bus/a b", "event bus name"),
            ("arn:other:sqs:us-east-1:123456789012:q", "partition"),
            ("arn:aws:sqs", "six parts"),
        ] {
            let refused = Destination::parse(arn).unwrap_err();
            assert_eq!(refused.field, "url");
            assert!(refused.reason.contains(why), "{arn}: {}", refused.reason);
        }
        let long = format!("arn:aws:sqs:us-east-1:123456789012:{}", "q".repeat(81));
        assert!(Destination::parse(&long).is_err());
        assert!(Destination::parse("ftp://example.com").unwrap_err().reason.contains("http or https"));
    }

    #[test]
    fn fifo_ids_keep_what_sqs_accepts_and_hash_the_rest() {
        assert_eq!(fifo_id("<abc@mail.example.com>"), "<abc@mail.example.com>");
        assert_eq!(fifo_id(&"x".repeat(129)).len(), 64);
        assert_eq!(fifo_id("with space").len(), 64);
        assert_eq!(fifo_id("é"), fifo_id("é"));
        assert_eq!(fifo_id("").len(), 64);
    }
}
