//! TEMPORARY stub (replaced by the sim branch).
use std::path::{Path, PathBuf};
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub pods: usize,
    pub churn: bool,
}
impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            pods: 0,
            churn: true,
        }
    }
}
pub struct Fleet {
    p: PathBuf,
}
impl Fleet {
    pub async fn start(_opts: SimOptions) -> anyhow::Result<Fleet> {
        anyhow::bail!("stub")
    }
    pub fn kubeconfig_path(&self) -> &Path {
        &self.p
    }
    pub fn config_path(&self) -> &Path {
        &self.p
    }
    pub fn endpoints(&self) -> Vec<(String, String)> {
        vec![]
    }
    pub async fn shutdown(self) {}
}
pub async fn run_cli(_opts: SimOptions) -> anyhow::Result<()> {
    anyhow::bail!("stub")
}
