//! Input refused by validation: the field it concerns and why. The admin API answers it as a
//! 400 whose body names the field twice over: in the one-line `error`, and as `field` for code.

/// Input that validation refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Invalid {
    /// The request field it concerns (`url`, `types`, `headers`, `secret`, `cursor`, …).
    pub field: &'static str,
    /// One line, naming the field.
    pub reason: String,
}

impl Invalid {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Invalid {
        Invalid { field, reason: reason.into() }
    }

    /// The same refusal, about a field of another name (a pattern checked for `types` when a
    /// subscription is made is the `type` of an event listing).
    pub fn in_field(self, field: &'static str) -> Invalid {
        Invalid { field, ..self }
    }
}
