//! AWS plumbing: one shared SDK configuration for DynamoDB and S3, and turning SDK errors into
//! the one-line errors users see.
//!
//! S3 goes through `object_store`, which has its own credential chain; `SdkCredentials`
//! bridges aws-config's chain into it so profiles, SSO, assumed roles and environment
//! credentials work the same for both services. Credentials are cached until five minutes
//! before they expire (halfway through their lifetime if that is shorter) and are never logged.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use object_store::aws::AwsCredential;

use crate::error::{BoxError, Error, Result};

/// Where and as whom to talk to AWS.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Region (else the profile's or the environment's).
    pub region: Option<String>,
    /// Named profile from `~/.aws/config`.
    pub profile: Option<String>,
    /// DynamoDB endpoint override (local or compatible servers).
    pub endpoint_url: Option<String>,
    /// IAM role to assume for DynamoDB (and for S3 unless `s3_role_arn` is set).
    pub role_arn: Option<String>,
    /// IAM role to assume for S3, from the same base credentials.
    pub s3_role_arn: Option<String>,
    /// External ID the roles' trust policies require.
    pub external_id: Option<String>,
    /// Session name of the assumed roles (default `ddbsnap-<pid>`).
    pub role_session_name: Option<String>,
}

/// The loaded AWS configuration plus the DynamoDB client built from it (cheap to clone).
#[derive(Debug, Clone)]
pub struct AwsContext {
    /// The shared SDK configuration (DynamoDB's credentials).
    pub sdk: SdkConfig,
    /// The SDK configuration S3 is read and written with: `sdk`, or the one with the
    /// credentials of `--s3-role-arn`.
    pub s3: SdkConfig,
    /// The one DynamoDB client every request goes through.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The DynamoDB Streams client: the same credentials, region and endpoint override (a
    /// local server serves both; `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` can split them).
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// Region in use ("unknown" when none could be determined).
    pub region: String,
    /// DynamoDB endpoint override, if any.
    pub endpoint_url: Option<String>,
}

/// `base` with the credentials of IAM role `role`, assumed with STS from `base`'s own
/// credentials (the profile's, the environment's, ...) and refreshed before they expire. The
/// role is assumed once here, so a role that cannot be assumed is one clear error before
/// anything starts.
async fn assume_role(base: &SdkConfig, role: &str, opts: &AwsOptions) -> Result<SdkConfig> {
    let session = opts
        .role_session_name
        .clone()
        .unwrap_or_else(|| format!("ddbsnap-{}", std::process::id()));
    let mut builder = aws_config::sts::AssumeRoleProvider::builder(role).session_name(session);
    if let Some(id) = &opts.external_id {
        builder = builder.external_id(id);
    }
    let provider = builder.configure(base).build().await;
    if let Err(e) = provider.provide_credentials().await {
        let cause = root_cause(&e);
        let denied = cause.contains("AccessDenied") || cause.contains("not authorized");
        let message = format!("cannot assume role {role}: {cause}");
        return Err(if denied {
            Error::AccessDenied { message }
        } else {
            Error::Credentials {
                message,
                source: Some(Box::new(e)),
            }
        });
    }
    Ok(base
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(provider))
        .build())
}

/// Fail unless profile `name` is in the AWS config or credentials file (where `AWS_CONFIG_FILE`
/// and `AWS_SHARED_CREDENTIALS_FILE` say, else `~/.aws/`). aws-config would otherwise carry on
/// down its chain and sign with whatever else it finds (environment variables, the instance
/// role): never other credentials than the ones asked for.
async fn require_profile(name: &str) -> Result<()> {
    use aws_types::os_shim_internal::{Env, Fs};
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    let profiles = aws_config::profile::load(&Fs::real(), &Env::real(), &files, None)
        .await
        .map_err(|e| Error::Credentials {
            message: format!("cannot read the AWS config files for --profile {name}: {e}"),
            source: Some(Box::new(e)),
        })?;
    if profiles.get_profile(name).is_some() {
        return Ok(());
    }
    let mut known: Vec<&str> = profiles.profiles().collect();
    known.sort_unstable();
    let known = if known.is_empty() {
        "there are none".to_owned()
    } else {
        format!("there are: {}", known.join(", "))
    };
    Err(Error::Credentials {
        message: format!(
            "profile '{name}' is not in the AWS config or credentials file ({known}); check the \
             name, or AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE"
        ),
        source: None,
    })
}

impl AwsContext {
    /// Load configuration through the standard aws-config chain (environment, profiles, SSO,
    /// web identity, IMDS) and build the DynamoDB client.
    pub async fn load(opts: &AwsOptions) -> Result<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &opts.region {
            loader = loader.region(aws_config::Region::new(region.clone()));
        }
        if let Some(profile) = &opts.profile {
            require_profile(profile).await?;
            loader = loader.profile_name(profile);
        }
        let base = loader.load().await;
        if base.region().is_none() && opts.endpoint_url.is_none() {
            return Err(Error::invalid(
                "no AWS region configured; pass --region, set AWS_REGION or use a profile with a region",
            ));
        }
        let sdk = match &opts.role_arn {
            Some(role) => assume_role(&base, role, opts).await?,
            None => base.clone(),
        };
        let s3 = match &opts.s3_role_arn {
            Some(role) => assume_role(&base, role, opts).await?,
            None => sdk.clone(),
        };
        Ok(AwsContext {
            s3,
            ..Self::from_sdk_config(sdk, opts.endpoint_url.clone())
        })
    }

    /// Build the context from an SDK configuration the caller assembled (explicit credentials,
    /// custom HTTP client, ...), with an optional DynamoDB endpoint override.
    pub fn from_sdk_config(sdk: SdkConfig, endpoint_url: Option<String>) -> Self {
        let region = sdk
            .region()
            .map(|r| r.to_string())
            .unwrap_or_else(|| "unknown".to_owned());
        let mut builder = aws_sdk_dynamodb::config::Builder::from(&sdk);
        let mut streams = aws_sdk_dynamodbstreams::config::Builder::from(&sdk);
        if sdk.region().is_none() {
            // A custom endpoint still needs some region to sign with.
            builder = builder.region(aws_config::Region::new("us-east-1"));
            streams = streams.region(aws_config::Region::new("us-east-1"));
        }
        if let Some(url) = &endpoint_url {
            builder = builder.endpoint_url(url);
            streams = streams.endpoint_url(url);
        }
        AwsContext {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(builder.build()),
            streams: aws_sdk_dynamodbstreams::Client::from_conf(streams.build()),
            s3: sdk.clone(),
            sdk,
            region,
            endpoint_url,
        }
    }

    /// Where DynamoDB requests go, for messages.
    pub(crate) fn endpoint_label(&self) -> String {
        match &self.endpoint_url {
            Some(url) => url.clone(),
            None => format!("dynamodb.{}.amazonaws.com", self.region),
        }
    }

    /// Turn an SDK error of `operation` into a user-facing [`Error`].
    pub(crate) fn classify<E>(
        &self,
        operation: &'static str,
        table: &str,
        err: SdkError<E, aws_smithy_runtime_api::http::Response>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let code = err.code().unwrap_or_default().to_owned();
        let message = err.message().unwrap_or_default().to_owned();
        if has_credentials_error(&err) {
            return Error::Credentials {
                message: "no usable AWS credentials found; configure a profile (--profile), \
                          environment variables or SSO (`aws sso login`)"
                    .to_owned(),
                source: Some(Box::new(err)),
            };
        }
        match &err {
            SdkError::ServiceError(_) => match code.as_str() {
                "ResourceNotFoundException" => Error::TableNotFound {
                    table: table.to_owned(),
                    region: self.region.clone(),
                    endpoint: self
                        .endpoint_url
                        .as_ref()
                        .map(|u| format!(" at {u}"))
                        .unwrap_or_default(),
                },
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "IncompleteSignatureException"
                | "MissingAuthenticationTokenException"
                | "InvalidClientTokenId"
                | "ExpiredTokenException"
                | "ExpiredToken" => Error::Credentials {
                    message: format!(
                        "{code}: {message}; check the access key, the secret and the session \
                         token (or run `aws sso login`)"
                    ),
                    source: Some(Box::new(err)),
                },
                "ValidationException" if operation == "Scan" => Error::InvalidArgument {
                    message: format!(
                        "DynamoDB rejected the Scan of '{table}': {message}; check --filter, \
                         --names, --values, --columns and --index"
                    ),
                },
                "UnknownOperationException" => Error::Dynamo {
                    operation,
                    message: format!(
                        "the DynamoDB endpoint at {} does not implement {operation}{}",
                        self.endpoint_label(),
                        match operation {
                            "DescribeContinuousBackups"
                            | "ExportTableToPointInTime"
                            | "DescribeExport" => {
                                "; --mode export needs DynamoDB itself (point-in-time \
                                 recovery and Export to S3): leave out --mode export to scan"
                            }
                            _ => "",
                        }
                    ),
                    code,
                    source: Some(Box::new(err)),
                },
                "AccessDeniedException" => Error::AccessDenied {
                    message: format!(
                        "{message}; the identity needs dynamodb:{operation} on table '{table}'"
                    ),
                },
                _ => Error::Dynamo {
                    operation,
                    code,
                    message: if message.is_empty() {
                        "(the service gave no message)".to_owned()
                    } else {
                        message
                    },
                    source: Some(Box::new(err)),
                },
            },
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => Error::Unreachable {
                endpoint: self.endpoint_label(),
                message: root_cause(&err),
                source: Some(Box::new(err)),
            },
            _ => Error::Dynamo {
                operation,
                code: if code.is_empty() {
                    "Error".to_owned()
                } else {
                    code
                },
                message: root_cause(&err),
                source: Some(Box::new(err)),
            },
        }
    }
}

fn has_credentials_error(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.is::<aws_credential_types::provider::error::CredentialsError>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The innermost message of an error chain, which is usually the informative one
/// ("Connection refused", "dns error").
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let s = cur.to_string();
    if s.is_empty() { err.to_string() } else { s }
}

/// aws-config's credential chain as an `object_store` credential provider.
#[derive(Debug)]
pub(crate) struct SdkCredentials {
    provider: SharedCredentialsProvider,
    cached: Mutex<Option<Cached>>,
}

/// Credentials the bridge handed out, and when to fetch new ones (`None`: they never expire).
#[derive(Debug)]
struct Cached {
    credential: Arc<AwsCredential>,
    refresh_at: Option<SystemTime>,
}

impl SdkCredentials {
    pub(crate) fn new(provider: SharedCredentialsProvider) -> Self {
        SdkCredentials {
            provider,
            cached: Mutex::new(None),
        }
    }
}

/// Credentials are refreshed this long before they expire, or halfway through their lifetime
/// when that is shorter (a `credential_process` may hand out credentials for a minute).
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// When credentials fetched at `now` that expire at `expiry` are due for a refresh.
fn refresh_at(now: SystemTime, expiry: Option<SystemTime>) -> Option<SystemTime> {
    let expiry = expiry?;
    let lifetime = expiry.duration_since(now).unwrap_or_default();
    Some(expiry - REFRESH_BEFORE_EXPIRY.min(lifetime / 2))
}

#[async_trait::async_trait]
impl object_store::CredentialProvider for SdkCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        if let Some(cached) = self.cached.lock().expect("not poisoned").as_ref()
            && cached.refresh_at.is_none_or(|at| SystemTime::now() < at)
        {
            return Ok(Arc::clone(&cached.credential));
        }
        let creds = self.provider.provide_credentials().await.map_err(|e| {
            object_store::Error::Generic {
                store: "S3",
                source: Box::new(e) as BoxError,
            }
        })?;
        let cred = Arc::new(AwsCredential {
            key_id: creds.access_key_id().to_owned(),
            secret_key: creds.secret_access_key().to_owned(),
            token: creds.session_token().map(str::to_owned),
        });
        *self.cached.lock().expect("not poisoned") = Some(Cached {
            credential: Arc::clone(&cred),
            refresh_at: refresh_at(SystemTime::now(), creds.expiry()),
        });
        Ok(cred)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_refreshed_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |secs| now + Duration::from_secs(secs);
        assert_eq!(refresh_at(now, None), None, "static credentials never");
        assert_eq!(
            refresh_at(now, Some(at(3600))),
            Some(at(3300)),
            "an hour: 5 min before"
        );
        assert_eq!(
            refresh_at(now, Some(at(60))),
            Some(at(30)),
            "a minute: halfway"
        );
        assert_eq!(refresh_at(now, Some(now)), Some(now), "expired: now");
    }
}
