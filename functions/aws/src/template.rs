//! The parts of `template.yaml` that follow from the provider list: each provider's ingest
//! function (with its log group, error alarm and optional Function URL) and the webhook URLs the
//! stack outputs. `tidings template` writes them between their markers, and a test fails when
//! the committed template differs from what this generates: a provider in the registry is a
//! provider deployed.

use tidings_core::ProviderId;

/// One provider's ingest resources: `@NAME@` is its resource name, `@ID@` its route id.
const INGEST_RESOURCES: &str = r#"  Ingest@NAME@:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      BuildProperties:
        Binary: ingest
    Properties:
      CodeUri: .
      Environment:
        Variables:
          TIDINGS_PROVIDER: @ID@
      Policies:
        - DynamoDBCrudPolicy: {TableName: !Ref Table}
        - SQSSendMessagePolicy: {QueueName: !GetAtt EventsQueue.QueueName}
        - SSMParameterReadPolicy: {ParameterName: !Sub '${SecretsPath}/*'}
      Events:
        Webhook:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Method: POST
            Path: /webhooks/@ID@/{source}
@HANDSHAKE@  Ingest@NAME@Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: !Sub /aws/lambda/${Ingest@NAME@}
      RetentionInDays: 30
  Ingest@NAME@Errors:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: Ingest@NAME@ function errors.
      Namespace: AWS/Lambda
      MetricName: Errors
      Dimensions:
        - {Name: FunctionName, Value: !Ref Ingest@NAME@}
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      Threshold: 0
      ComparisonOperator: GreaterThanThreshold
      TreatMissingData: notBreaching
  Ingest@NAME@Url:
    Type: AWS::Lambda::Url
    Condition: WithFunctionUrls
    Properties:
      TargetFunctionArn: !GetAtt Ingest@NAME@.Arn
      AuthType: NONE
  Ingest@NAME@UrlPermission:
    Type: AWS::Lambda::Permission
    Condition: WithFunctionUrls
    Properties:
      FunctionName: !Ref Ingest@NAME@
      Action: lambda:InvokeFunctionUrl
      Principal: "*"
      FunctionUrlAuthType: NONE
  Ingest@NAME@UrlInvokePermission:
    Type: AWS::Lambda::Permission
    Condition: WithFunctionUrls
    Properties:
      FunctionName: !Ref Ingest@NAME@
      Action: lambda:InvokeFunction
      Principal: "*"
      InvokedViaFunctionUrl: true
"#;

/// The GET route of a provider that checks its webhook URL before posting (Meta's verification
/// request), added to its function's events.
const HANDSHAKE_EVENT: &str = r#"        Handshake:
          Type: HttpApi
          Properties:
            ApiId: !Ref HttpApi
            Method: GET
            Path: /webhooks/@ID@/{source}
"#;

/// The stack outputs that tell where to point a provider's webhooks.
const WEBHOOK_URL: &str = r#"  @NAME@WebhookUrl:
    Description: Paste into @DISPLAY@'s webhook settings, with your source id in place of {source}.
    Value: !Sub https://${HttpApi}.execute-api.${AWS::Region}.amazonaws.com/webhooks/@ID@/{source}
"#;

const FUNCTION_URL: &str = r#"  Ingest@NAME@FunctionUrl:
    Condition: WithFunctionUrls
    Description: With WebhookWiring=function-urls, paste into @DISPLAY@'s webhook settings instead, with your source id in place of {source}.
    Value: !Sub ${Ingest@NAME@Url.FunctionUrl}webhooks/@ID@/{source}
"#;

/// The markers around each generated part, as whole lines of `template.yaml`.
pub const REGIONS: [(&str, &str); 2] = [
    (
        "  # BEGIN generated ingest functions (one per provider: `tidings template` writes them)",
        "  # END generated ingest functions",
    ),
    (
        "  # BEGIN generated webhook URLs (one per provider: `tidings template` writes them)",
        "  # END generated webhook URLs",
    ),
];

/// Providers in the order of their resource names, as the template lists them.
fn providers() -> Vec<ProviderId> {
    let mut all = ProviderId::ALL.to_vec();
    all.sort_by_key(|p| p.resource_name());
    all
}

fn fill(text: &str, provider: ProviderId) -> String {
    let handshake = if provider.provider().answers_get() { HANDSHAKE_EVENT } else { "" };
    text.replace("@HANDSHAKE@", handshake)
        .replace("@NAME@", provider.resource_name())
        .replace("@ID@", provider.as_str())
        .replace("@DISPLAY@", provider.display_name())
}

/// The ingest functions, each followed by a blank line.
pub fn ingest_resources() -> String {
    providers().into_iter().map(|p| fill(INGEST_RESOURCES, p) + "\n").collect()
}

/// Every provider's webhook URL output, then every Function URL output.
pub fn webhook_outputs() -> String {
    let providers = providers();
    let urls = providers.iter().map(|p| fill(WEBHOOK_URL, *p));
    let function_urls = providers.iter().map(|p| fill(FUNCTION_URL, *p));
    urls.chain(function_urls).collect()
}

/// Why a template cannot be regenerated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template.yaml has no line {0:?}: put the markers back around the generated part")]
pub struct MissingMarker(pub &'static str);

/// `template` with each generated part written anew between its markers.
pub fn regenerate(template: &str) -> Result<String, MissingMarker> {
    let mut out = template.to_owned();
    for ((begin, end), body) in REGIONS.into_iter().zip([ingest_resources(), webhook_outputs()]) {
        let start = out.find(&format!("{begin}\n")).ok_or(MissingMarker(begin))? + begin.len() + 1;
        let stop = out[start..].find(&format!("{end}\n")).ok_or(MissingMarker(end))? + start;
        out.replace_range(start..stop, &body);
    }
    Ok(out)
}
