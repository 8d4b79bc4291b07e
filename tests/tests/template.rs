//! `template.yaml` and the code agree: every function's binary exists, and every setting the
//! code reads from the environment is set for the functions. (cfn-lint, run by the test
//! command, checks the template itself.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn template() -> String {
    std::fs::read_to_string(repo().join("template.yaml")).unwrap()
}

/// Every binary target in the workspace: `[[bin]]` names and `src/bin/*.rs` files.
fn binaries() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("functions")).unwrap() {
        let dir = entry.unwrap().path();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        let mut in_bin = false;
        for line in manifest.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin && let Some(name) = line.strip_prefix("name = ") {
                names.insert(name.trim_matches('"').to_owned());
            }
        }
        if let Ok(files) = std::fs::read_dir(dir.join("src/bin")) {
            for file in files {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "rs") {
                    names.insert(path.file_stem().unwrap().to_string_lossy().into_owned());
                }
            }
        }
    }
    names
}

/// `TIDINGS_*` names the sources of the Lambda functions read (the CLI and the local adapters
/// are not deployed).
fn settings_read_by_the_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut stack = vec![repo().join("functions")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                let skipped = ["tests", "examples", "cli", "local"];
                if !skipped.iter().any(|s| path.ends_with(s)) {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split('"').skip(1).step_by(2) {
                    if piece.starts_with("TIDINGS_") && piece.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                        names.insert(piece.to_owned());
                    }
                }
            }
        }
    }
    names
}

#[test]
fn every_function_in_the_template_is_a_binary_of_the_workspace() {
    let binaries = binaries();
    let declared: Vec<String> =
        template().lines().filter_map(|l| l.trim().strip_prefix("Binary: ").map(str::to_owned)).collect();
    assert!(declared.len() >= 17, "12 ingest functions, SES intake, processor, resend, fan-out, API: {declared:?}");
    for binary in &declared {
        assert!(binaries.contains(binary), "template.yaml builds {binary:?}, which no crate defines ({binaries:?})");
    }
}

/// The template's resources as (logical id, text of its block).
fn resources(template: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut inside = false;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            inside = line == "Resources:";
            continue;
        }
        if !inside {
            continue;
        }
        match line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            Some(id) if !id.starts_with(' ') && !id.starts_with('#') => out.push((id.to_owned(), String::new())),
            _ => {
                if let Some((_, block)) = out.last_mut() {
                    block.push_str(line);
                    block.push('\n');
                }
            }
        }
    }
    out
}

#[test]
fn every_provider_has_an_ingest_function_serving_its_route() {
    let template = template();
    let resources = resources(&template);
    for provider in tidings_core::ProviderId::ALL {
        let functions: Vec<&String> = resources
            .iter()
            .filter(|(_, block)| block.contains(&format!("TIDINGS_PROVIDER: {provider}\n")))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(functions.len(), 1, "one ingest function for {provider}: {functions:?}");
        let block = &resources.iter().find(|(id, _)| id == functions[0]).unwrap().1;
        assert!(block.contains("Binary: ingest\n"), "{} does not run the ingest binary", functions[0]);
        assert!(
            block.contains(&format!("Path: /webhooks/{provider}/{{source}}\n")),
            "{} does not serve /webhooks/{provider}/{{source}}",
            functions[0]
        );
    }
}

#[test]
fn every_setting_the_code_reads_is_set_by_the_template() {
    let template = template();
    // Optional on AWS: which private networks fan-out may reach (none unless you opt in).
    let optional = ["TIDINGS_ALLOW_NETWORKS"];
    let missing: Vec<String> = settings_read_by_the_code()
        .into_iter()
        .filter(|name| !optional.contains(&name.as_str()))
        .filter(|name| !template.contains(&format!("{name}:")))
        .collect();
    assert!(missing.is_empty(), "read by the code, never set in template.yaml: {missing:?}");
}

#[test]
fn every_dead_letter_queue_has_an_alarm() {
    let template = template();
    let dead_letter_queues: Vec<&str> = template
        .lines()
        .filter_map(|l| l.strip_prefix("  ").and_then(|l| l.strip_suffix(':')))
        .filter(|name| !name.starts_with(' ') && name.ends_with("DeadLetterQueue"))
        .collect();
    assert!(dead_letter_queues.len() >= 4, "events, deliveries, resend, SES intake: {dead_letter_queues:?}");
    for queue in dead_letter_queues {
        let watched = format!("{{Name: QueueName, Value: !GetAtt {queue}.QueueName}}");
        assert!(template.contains(&watched), "no alarm on {queue}");
    }
}

/// The template as SAM deploys it (`infra/transform.py`, run by the test command).
fn deployed() -> serde_json::Value {
    let path = std::env::var("TIDINGS_TRANSFORMED_TEMPLATE").unwrap_or_else(|_| {
        panic!("TIDINGS_TRANSFORMED_TEMPLATE is not set: run ./scripts/test.sh, which translates template.yaml")
    });
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn every_queue_fed_function_can_finish_and_report_before_its_message_reappears() {
    let template = deployed();
    let resources = template["Resources"].as_object().unwrap();
    let global_timeout = 10;
    let mappings: Vec<&serde_json::Value> =
        resources.values().filter(|r| r["Type"] == "AWS::Lambda::EventSourceMapping").collect();
    assert_eq!(mappings.len(), 4, "SES intake, processor, resend, fan-out");
    for mapping in mappings {
        let properties = &mapping["Properties"];
        let function_id = properties["FunctionName"]["Ref"].as_str().unwrap();
        let queue_id = properties["EventSourceArn"]["Fn::GetAtt"][0].as_str().unwrap();
        let timeout = resources[function_id]["Properties"]["Timeout"].as_u64().unwrap_or(global_timeout);
        let queue = &resources[queue_id]["Properties"];
        let visibility = queue["VisibilityTimeout"].as_u64().unwrap_or(30);
        // AWS's guidance for SQS event sources: at least six times the function's timeout.
        assert!(visibility >= 6 * timeout, "{queue_id}: visibility {visibility} s < 6 × {function_id}'s {timeout} s");
        assert_eq!(
            properties["FunctionResponseTypes"],
            serde_json::json!(["ReportBatchItemFailures"]),
            "{function_id} reports failed records one by one"
        );
        assert!(!queue["RedrivePolicy"].is_null(), "{queue_id} has no dead-letter queue");
    }
}

#[test]
fn a_delivery_is_retried_on_its_whole_schedule_before_sqs_dead_letters_it() {
    use tidings_core::delivery::SCHEDULE;
    let template = deployed();
    let deliveries = &template["Resources"]["DeliveriesQueue"]["Properties"];
    // The receive count is the attempt number: every scheduled retry plus the first attempt
    // must fit under maxReceiveCount, with room for a redelivery after a crash.
    let max_receive = deliveries["RedrivePolicy"]["maxReceiveCount"].as_u64().unwrap();
    assert!(max_receive > SCHEDULE.len() as u64 + 1, "maxReceiveCount {max_receive} cuts the schedule short");
    let schedule: u64 = SCHEDULE.iter().map(|d| d.as_secs()).sum();
    let retention = deliveries["MessageRetentionPeriod"].as_u64().unwrap();
    assert!(retention > 2 * schedule, "a delivery outlives its queue: retention {retention} s, schedule {schedule} s");
}

#[test]
fn with_function_urls_every_ingest_function_is_public_through_its_own_url_only() {
    let template = deployed();
    let resources = template["Resources"].as_object().unwrap();
    assert_eq!(template["Conditions"]["WithFunctionUrls"]["Fn::Equals"][1], "function-urls");
    let ingest: Vec<&String> = resources
        .iter()
        .filter(|(_, r)| r["Properties"]["Environment"]["Variables"]["TIDINGS_PROVIDER"].is_string())
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ingest.len(), tidings_core::ProviderId::ALL.len());
    let of_type = |kind: &str, function: &str| -> Vec<&serde_json::Value> {
        resources
            .values()
            .filter(|r| r["Type"] == kind && r["Condition"] == "WithFunctionUrls")
            .map(|r| &r["Properties"])
            .filter(|p| p["TargetFunctionArn"]["Fn::GetAtt"][0] == function || p["FunctionName"]["Ref"] == function)
            .collect()
    };
    for function in ingest {
        let urls = of_type("AWS::Lambda::Url", function);
        assert_eq!(urls.len(), 1, "{function}: one function URL");
        assert_eq!(urls[0]["AuthType"], "NONE", "{function}: providers cannot sign AWS requests");
        // Since October 2025 a public function URL needs both grants; the second only through the URL.
        let permissions = of_type("AWS::Lambda::Permission", function);
        let grants: BTreeSet<(String, String)> = permissions
            .iter()
            .map(|p| (p["Action"].as_str().unwrap().to_owned(), p["Principal"].as_str().unwrap().to_owned()))
            .collect();
        let expected: BTreeSet<(String, String)> = [("lambda:InvokeFunctionUrl", "*"), ("lambda:InvokeFunction", "*")]
            .map(|(a, p)| (a.to_owned(), p.to_owned()))
            .into();
        assert_eq!(grants, expected, "{function}");
        for permission in permissions {
            match permission["Action"].as_str() {
                Some("lambda:InvokeFunctionUrl") => assert_eq!(permission["FunctionUrlAuthType"], "NONE"),
                _ => {
                    assert_eq!(permission["InvokedViaFunctionUrl"], true, "{function}: public invoke only via its URL")
                }
            }
        }
    }
}

#[test]
fn provisioned_billing_gives_the_table_and_each_index_capacity_scaled_on_reads_and_writes() {
    let template = deployed();
    let resources = template["Resources"].as_object().unwrap();
    assert_eq!(template["Parameters"]["TableBilling"]["Default"], "on-demand", "on demand unless asked");
    assert_eq!(template["Conditions"]["ProvisionedTable"]["Fn::Equals"][1], "provisioned");
    let table = &resources["Table"]["Properties"];
    assert_eq!(
        table["BillingMode"]["Fn::If"],
        serde_json::json!(["ProvisionedTable", "PROVISIONED", "PAY_PER_REQUEST"])
    );
    // DynamoDB refuses a provisioned table if the table or any index lacks its throughput.
    let mut capacities = vec![&table["ProvisionedThroughput"]];
    capacities.extend(table["GlobalSecondaryIndexes"].as_array().unwrap().iter().map(|i| &i["ProvisionedThroughput"]));
    for capacity in &capacities {
        assert_eq!(capacity["Fn::If"][0], "ProvisionedTable", "{capacity}");
        assert_eq!(capacity["Fn::If"][2]["Ref"], "AWS::NoValue", "on demand takes no throughput: {capacity}");
    }
    // Each of the six capacities (table, GSI1, GSI2 × read, write) is scaled by target tracking.
    let mut scaled = BTreeSet::new();
    for (id, resource) in resources.iter().filter(|(_, r)| r["Type"] == "AWS::ApplicationAutoScaling::ScalableTarget") {
        assert_eq!(resource["Condition"], "ProvisionedTable", "{id}");
        let target = &resource["Properties"];
        let on = target["ResourceId"]["Fn::Sub"].as_str().unwrap().replace("table/${Table}", "table");
        scaled.insert((on, target["ScalableDimension"].as_str().unwrap().rsplit(':').next().unwrap().to_owned()));
        let policies: Vec<&serde_json::Value> = resources
            .values()
            .filter(|r| r["Type"] == "AWS::ApplicationAutoScaling::ScalingPolicy")
            .filter(|r| r["Properties"]["ScalingTargetId"]["Ref"] == id.as_str())
            .collect();
        assert_eq!(policies.len(), 1, "{id}: one policy");
        let tracking = &policies[0]["Properties"]["TargetTrackingScalingPolicyConfiguration"];
        assert_eq!(tracking["TargetValue"], 70);
    }
    let expected: BTreeSet<(String, String)> = ["table", "table/index/GSI1", "table/index/GSI2"]
        .iter()
        .flat_map(|on| ["ReadCapacityUnits", "WriteCapacityUnits"].map(|d| (on.to_string(), d.to_owned())))
        .collect();
    assert_eq!(scaled, expected);
}

#[test]
fn each_provider_in_the_registry_is_deployed_by_the_template_as_it_generates_it() {
    let text = template();
    let generated = tidings_aws::template::regenerate(&text).unwrap();
    assert!(generated == text, "template.yaml's per-provider parts are stale: run `tidings template`");
    for provider in tidings_core::ProviderId::ALL {
        let name = provider.resource_name();
        assert!(text.contains(&format!("\n  Ingest{name}:\n")), "no ingest function for {provider}");
        assert!(text.contains(&format!("TIDINGS_PROVIDER: {provider}\n")), "{provider}");
        assert!(text.contains(&format!("\n  {name}WebhookUrl:\n")), "no webhook URL output for {provider}");
    }
    // A hand edit inside a generated part is undone by the generator.
    let edited = text.replacen("Path: /webhooks/brevo/{source}", "Path: /webhooks/brevo-typo/{source}", 1);
    assert_ne!(edited, text);
    assert_eq!(tidings_aws::template::regenerate(&edited).unwrap(), text);
}

#[test]
fn the_fan_out_function_may_send_to_exactly_the_configured_destinations_and_none_by_default() {
    use serde_json::json;
    let template = deployed();
    for (condition, parameter) in
        [("WithBusDestinations", "EventBusDestinations"), ("WithQueueDestinations", "QueueDestinations")]
    {
        assert_eq!(template["Parameters"][parameter]["Type"], "CommaDelimitedList");
        assert_eq!(template["Parameters"][parameter]["Default"], "", "{parameter}: none unless configured");
        // Set when the list joined is not empty: CloudFormation's only test of a list.
        assert_eq!(
            template["Conditions"][condition],
            json!({"Fn::Not": [{"Fn::Equals": [{"Fn::Join": [",", {"Ref": parameter}]}, ""]}]})
        );
    }
    let role_id = template["Resources"]["Fanout"]["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap();
    let policies = template["Resources"][role_id]["Properties"]["Policies"].as_array().unwrap();
    let mut conditional = Vec::new();
    for policy in policies {
        match policy["Fn::If"].as_array() {
            Some(branches) => {
                assert_eq!(branches[2], json!({"Ref": "AWS::NoValue"}), "nothing granted when not configured");
                for statement in branches[1]["PolicyDocument"]["Statement"].as_array().unwrap() {
                    conditional.push((branches[0].clone(), statement["Action"].clone(), statement["Resource"].clone()));
                }
            }
            None => {
                // Unconditionally, SendMessage only to the stack's own queues, and no PutEvents.
                for statement in policy["PolicyDocument"]["Statement"].as_array().unwrap() {
                    let actions = statement["Action"].to_string();
                    assert!(!actions.contains("events:"), "{statement}");
                    if actions.contains("sqs:SendMessage") {
                        assert!(
                            statement["Resource"].to_string().contains("Fn::"),
                            "a queue of the stack: {statement}"
                        );
                    }
                }
            }
        }
    }
    assert_eq!(
        conditional,
        vec![
            (json!("WithBusDestinations"), json!(["events:PutEvents"]), json!({"Ref": "EventBusDestinations"})),
            (json!("WithQueueDestinations"), json!(["sqs:SendMessage"]), json!({"Ref": "QueueDestinations"})),
        ]
    );
}
