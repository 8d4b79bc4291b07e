"""Expands template.yaml with the AWS SAM translator, offline, and writes the CloudFormation
template SAM would deploy (JSON) to the path given.

`sam validate --lint` does not run the translator without AWS credentials, so errors only the
translation finds (two generated resources with one logical id, an intrinsic where SAM needs a
literal) would first show at `sam deploy`. The test command runs this, and the Lambda-level
end-to-end test reads the output: the functions' environments and IAM policies as deployed.

Usage: python infra/transform.py template.yaml target/template.transformed.json
(needs aws-sam-cli's samtranslator; ./scripts/test.sh installs it in target/deploy-venv)
"""

import json
import os
import sys

from samtranslator.public.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class ManagedPolicies:
    """The AWS managed policies SAM attaches by name; known offline so no IAM call is made."""

    def load(self):
        prefix = "arn:aws:iam::aws:policy/service-role/"
        names = ["AWSLambdaBasicExecutionRole", "AWSLambdaSQSQueueExecutionRole"]
        return {name: prefix + name for name in names}


def main(source, destination):
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    with open(source) as f:
        template = yaml_parse(f.read())
    # SAM packages `CodeUri: .` at build time; the translator wants the S3 location it becomes.
    for resource in template.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://tidings-build/code.zip"
    try:
        transformed = transform(template, {}, ManagedPolicies())
    except InvalidDocumentException as error:
        for cause in error.causes:
            print(f"{source}: {cause.message}", file=sys.stderr)
        return 1
    with open(destination, "w") as f:
        json.dump(transformed, f, indent=1, sort_keys=True)
    print(f"{source}: translated, {len(transformed['Resources'])} resources -> {destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
