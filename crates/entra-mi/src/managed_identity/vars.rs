//! The environment variables that select and configure the managed-identity sources.

pub(super) const IDENTITY_ENDPOINT: &str = "IDENTITY_ENDPOINT";
pub(super) const IDENTITY_HEADER: &str = "IDENTITY_HEADER";
pub(super) const IDENTITY_SERVER_THUMBPRINT: &str = "IDENTITY_SERVER_THUMBPRINT";
pub(super) const IMDS_ENDPOINT: &str = "IMDS_ENDPOINT";
pub(super) const MSI_ENDPOINT: &str = "MSI_ENDPOINT";
pub(super) const MSI_SECRET: &str = "MSI_SECRET";
pub(super) const AZURE_POD_IDENTITY_AUTHORITY_HOST: &str = "AZURE_POD_IDENTITY_AUTHORITY_HOST";
pub(super) const DEFAULT_IDENTITY_CLIENT_ID: &str = "DEFAULT_IDENTITY_CLIENT_ID";
