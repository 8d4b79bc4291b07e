//! Provider secrets kept in SSM Parameter Store. A source's secret may be a reference,
//! `ssm:<parameter name>`, instead of the value itself: the table then holds only the name, and
//! the ingest functions read the (decrypted) value when they load the source, so rotating a
//! secret is `aws ssm put-parameter --overwrite` with no tidings call. Only parameters under
//! `TIDINGS_SECRETS_PREFIX` (the stack's `/<SecretsPath>/`, which is all the functions' roles may
//! read) are resolved, so a source cannot point tidings at another parameter of the account.

use tidings_core::ports::StoreError;
use tidings_core::source::Source;

/// What marks a secret as a reference to an SSM parameter.
pub const REFERENCE: &str = "ssm:";

/// Resolves `ssm:` references through SSM `GetParameter` (with decryption).
#[derive(Clone, Debug)]
pub struct SsmSecrets {
    client: crate::LazyClient<aws_sdk_ssm::Client>,
    prefix: String,
}

impl SsmSecrets {
    /// `prefix`: the parameter path references must lie under (`/tidings/`).
    pub fn new(client: impl Into<crate::LazyClient<aws_sdk_ssm::Client>>, prefix: impl Into<String>) -> Self {
        SsmSecrets { client: client.into(), prefix: prefix.into() }
    }

    /// The SDK client, built on first use ([`crate::LazyClient`]).
    async fn client(&self) -> &aws_sdk_ssm::Client {
        self.client.get().await
    }

    /// Replaces each `ssm:` reference among the source's secrets with the parameter's value.
    /// A missing parameter or a name outside the prefix is permanent; throttling is retryable.
    pub async fn resolve(&self, source: &mut Source) -> Result<(), StoreError> {
        for secret in &mut source.secrets {
            let Some(name) = secret.strip_prefix(REFERENCE) else { continue };
            if self.prefix.is_empty() || !name.starts_with(&self.prefix) {
                return Err(StoreError::misconfigured(format!(
                    "source {}: secret reference {name:?} is not under {:?} (TIDINGS_SECRETS_PREFIX), the SSM path this deployment reads",
                    source.id, self.prefix
                )));
            }
            let out = self
                .client()
                .await
                .get_parameter()
                .name(name)
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| crate::classify(&format!("source {}: SSM GetParameter {name}", source.id), &e))?;
            *secret = out.parameter.and_then(|p| p.value).ok_or_else(|| {
                StoreError::misconfigured(format!("source {}: SSM parameter {name} has no value", source.id))
            })?;
        }
        Ok(())
    }
}
