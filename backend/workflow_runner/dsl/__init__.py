"""The Serverless Workflow DSL (1.0) subset we support: loading, validation, expressions, errors."""
