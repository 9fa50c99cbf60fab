//! The command line (contracts in interfaces.md): parsing, exit codes, and wiring each command
//! to the parts that do the work.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::app::AppState;
use crate::config::{Config, ConfigError};
use crate::keymap::Keymap;
use crate::ui::Theme;

/// Exit codes shared by every command (interfaces.md).
pub mod exit {
    pub const OK: i32 = 0;
    pub const WARN: i32 = 1;
    pub const CRIT: i32 = 2;
    pub const USAGE: i32 = 3;
    pub const INTERNAL: i32 = 4;
}

#[derive(Parser, Debug)]
#[command(
    name = "opsdeck",
    version,
    about = "Terminal operations console: both clusters side by side"
)]
pub struct Cli {
    /// Config file (else $OPSDECK_CONFIG, $XDG_CONFIG_HOME/opsdeck/config.toml, /etc/opsdeck/config.toml)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Work on the simulated fleet instead of a config
    #[arg(long, global = true)]
    pub demo: bool,
    /// Refuse every state-changing action
    #[arg(long, global = true)]
    pub read_only: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The console on the simulated fleet (starts it in-process)
    Demo,
    /// The same picture once, as text or JSON; exit 0 ok, 1 warnings, 2 critical
    Status(StatusArgs),
    /// The simulated fleet alone, until Ctrl-C; prints `kubeconfig: PATH` and `config: PATH`
    ///
    /// `kubectl exec` into `postgres-0` (or a `postgres-backup-*` Job's pod) runs `psql`,
    /// `pg_dump`, `pg_isready`, `pg_restore`, `createdb` and `dropdb` against a real PostgreSQL
    /// when one is installed (the newest /usr/lib/postgresql/*/bin; Debian/Ubuntu: `apt-get
    /// install postgresql`): each cluster starts its own server on first use (loopback, a temp
    /// dir, run as `postgres` when root) with a seeded `goapps` database, so restore-postgres
    /// really restores. Those commands run as local processes (as `postgres` when root).
    /// Without PostgreSQL they fail with a message saying so, and `runbook run` warns up front
    /// which steps cannot run. OPSDECK_SIM_POSTGRES=off turns the real server off. The config
    /// gives each cluster `[cluster.env]` BACKUP_DIR (a folder of the simulator, named as on
    /// the VPS) and `host = "simulated-fleet.invalid"`, so host-level steps never run here.
    Sim {
        /// At least this many pods per cluster (heavy, like real ones)
        #[arg(long, default_value_t = 0)]
        pods: usize,
    },
    /// Config commands
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Runbooks: list, show, run step by step against a cluster, past runs
    #[command(subcommand)]
    Runbook(RunbookCommand),
    /// Port-forward shortcuts: `--list`, or run CLUSTER/NAME... until Ctrl-C
    Forward {
        /// Print one `CLUSTER/NAME<TAB>TARGET` line per shortcut
        #[arg(long)]
        list: bool,
        /// Shortcuts to run, as CLUSTER/NAME
        #[arg(value_name = "CLUSTER/NAME")]
        names: Vec<String>,
    },
    /// Write a commented config for this machine from its kubeconfig contexts and what each
    /// cluster's API shows; exit 0 written, 3 the file exists (without --force)
    Init {
        /// Where to write it (default $XDG_CONFIG_HOME/opsdeck/config.toml); `-` for stdout
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace an existing file
        #[arg(long)]
        force: bool,
    },
    /// Check every configured source end to end, printing ok or the fix for each; exit 0 all
    /// ok, 1 warnings, 2 failures
    Doctor {
        /// Only this cluster
        #[arg(long, value_name = "NAME")]
        cluster: Option<String>,
        /// How long each check may take
        #[arg(long, default_value = "10s", value_parser = parse_timeout)]
        timeout: Duration,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunbookCommand {
    /// Every runbook: name, title, step count (works without a config)
    List,
    /// A runbook with its steps numbered
    Show { name: String },
    /// Run a runbook's steps one by one against a cluster, each confirmed
    Run {
        name: String,
        /// The target cluster, as named in the config
        #[arg(long)]
        cluster: String,
        /// Start at this step (number or name)
        #[arg(long, value_name = "STEP")]
        from: Option<String>,
        /// Show exactly what would run, with variables resolved; run nothing
        #[arg(long)]
        dry_run: bool,
        /// Set a variable (never a secret one)
        #[arg(long = "var", value_name = "K=V")]
        vars: Vec<String>,
        /// Answer plain steps with yes (never a destructive one)
        #[arg(long)]
        yes: bool,
    },
    /// Check runbooks (the embedded ones without FILE): exit 0 clean, 1 problems
    Lint {
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Past runs from the audit log; one run with --run, as markdown with --markdown
    Log {
        #[arg(long, value_name = "ID")]
        run: Option<String>,
        #[arg(long)]
        markdown: bool,
    },
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print the JSON document of interfaces.md
    #[arg(long)]
    pub json: bool,
    /// Only this cluster
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// How long to wait for each source's first complete answer
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub timeout: Duration,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate the config and resolve its endpoints: exit 0 valid (warnings printed), 3 invalid
    Check,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    crate::config::parse_duration(s)
}

/// Entry point: parses the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    exit::OK
                }
                _ => exit::USAGE,
            };
            let _ = e.print();
            return code;
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("opsdeck: cannot start the async runtime: {e}");
            return exit::INTERNAL;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            crate::tui::restore();
            eprintln!("opsdeck: {e:#}");
            exit::INTERNAL
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match &cli.command {
        None if cli.demo => run_demo(&cli).await,
        None => run_console(&cli).await,
        Some(Command::Demo) => run_demo(&cli).await,
        Some(Command::Status(args)) => run_status(&cli, args).await,
        Some(Command::Sim { pods }) => run_sim(*pods).await,
        Some(Command::Config(ConfigCommand::Check)) => Ok(config_check(&cli)),
        Some(Command::Runbook(cmd)) => run_runbook(&cli, cmd).await,
        Some(Command::Forward { list, names }) => run_forward(&cli, *list, names).await,
        Some(Command::Init { output, force }) => {
            Ok(crate::init::run(output.as_deref(), *force).await)
        }
        Some(Command::Doctor { cluster, timeout }) => {
            run_doctor(&cli, cluster.as_deref(), *timeout).await
        }
    }
}

async fn run_doctor(cli: &Cli, cluster: Option<&str>, timeout: Duration) -> anyhow::Result<i32> {
    match load_config(cli) {
        Err(errors) => {
            print_errors(&errors);
            Ok(exit::USAGE)
        }
        Ok(None) => {
            eprintln!(
                "opsdeck: no config found; write one with `opsdeck init`, then run `opsdeck doctor`"
            );
            Ok(exit::USAGE)
        }
        Ok(Some((config, warnings))) => {
            for w in &warnings {
                eprintln!("warning: {w}");
            }
            Ok(crate::doctor::run(&config, cluster, timeout).await)
        }
    }
}

async fn run_forward(cli: &Cli, list: bool, names: &[String]) -> anyhow::Result<i32> {
    let work = |config: Config| async move {
        if list {
            crate::cli_forward::list(&config).await
        } else {
            crate::cli_forward::run(&config, names).await
        }
    };
    if cli.demo {
        #[cfg(feature = "sim")]
        {
            let (fleet, config) = start_fleet().await?;
            let code = work(config).await;
            fleet.shutdown().await;
            return Ok(code);
        }
        #[cfg(not(feature = "sim"))]
        {
            eprintln!(
                "opsdeck: this build has no simulated fleet (built without the `sim` feature)"
            );
            return Ok(exit::USAGE);
        }
    }
    match load_config(cli) {
        Err(errors) => {
            print_errors(&errors);
            Ok(exit::USAGE)
        }
        Ok(None) => {
            eprintln!(
                "opsdeck: no config found: shortcuts are [[forward]] entries in the config (or use --demo)"
            );
            Ok(exit::USAGE)
        }
        Ok(Some((config, _))) => Ok(work(config).await),
    }
}

/// The config for commands that also work without one: the file if there is one, else defaults.
fn config_or_defaults(cli: &Cli) -> Result<Config, i32> {
    match load_config(cli) {
        Err(errors) => {
            print_errors(&errors);
            Err(exit::USAGE)
        }
        Ok(None) => Ok(Config::defaults()),
        Ok(Some((c, _))) => Ok(c),
    }
}

async fn run_runbook(cli: &Cli, cmd: &RunbookCommand) -> anyhow::Result<i32> {
    match cmd {
        RunbookCommand::List => {
            Ok(config_or_defaults(cli).map_or_else(|c| c, |c| crate::cli_runbook::list(&c)))
        }
        RunbookCommand::Show { name } => {
            Ok(config_or_defaults(cli).map_or_else(|c| c, |c| crate::cli_runbook::show(&c, name)))
        }
        RunbookCommand::Lint { files } => Ok(
            config_or_defaults(cli).map_or_else(|c| c, |c| crate::runbook::lint::cli(files, &c))
        ),
        RunbookCommand::Log { run, markdown } => Ok(config_or_defaults(cli).map_or_else(
            |c| c,
            |mut c| {
                if cli.demo {
                    // Runs on the simulated fleet are recorded apart from real ones.
                    c.audit_log = demo_audit_log();
                }
                crate::cli_runbook::log(&c, run.as_deref(), *markdown)
            },
        )),
        RunbookCommand::Run {
            name,
            cluster,
            from,
            dry_run,
            vars,
            yes,
        } => {
            let args = crate::cli_runbook::RunArgs {
                name: name.clone(),
                cluster: cluster.clone(),
                from: from.clone(),
                dry_run: *dry_run,
                vars: vars.clone(),
                yes: *yes,
                read_only: cli.read_only,
            };
            if cli.demo {
                #[cfg(feature = "sim")]
                {
                    let (fleet, config) = start_fleet().await?;
                    let code = crate::cli_runbook::run(&config, &args).await;
                    fleet.shutdown().await;
                    return Ok(code);
                }
                #[cfg(not(feature = "sim"))]
                {
                    eprintln!(
                        "opsdeck: this build has no simulated fleet (built without the `sim` feature)"
                    );
                    return Ok(exit::USAGE);
                }
            }
            match load_config(cli) {
                Err(errors) => {
                    print_errors(&errors);
                    Ok(exit::USAGE)
                }
                Ok(None) => {
                    eprintln!(
                        "opsdeck: no config found: `runbook run` needs the target cluster's config (or --demo)"
                    );
                    Ok(exit::USAGE)
                }
                Ok(Some((config, _))) => Ok(crate::cli_runbook::run(&config, &args).await),
            }
        }
    }
}

fn print_errors(errors: &[ConfigError]) {
    for e in errors {
        eprintln!("{e}");
    }
}

/// Loads the config the command line points at. `Ok(None)`: there is none anywhere.
fn load_config(cli: &Cli) -> Result<Option<(Config, Vec<ConfigError>)>, Vec<ConfigError>> {
    let Some(path) = Config::locate(cli.config.as_deref()) else {
        return Ok(None);
    };
    let loaded = Config::load(&path)?;
    Ok(Some((loaded.config, loaded.warnings)))
}

fn config_check(cli: &Cli) -> i32 {
    let Some(path) = Config::locate(cli.config.as_deref()) else {
        eprintln!(
            "opsdeck: no config found (looked at --config, $OPSDECK_CONFIG, $XDG_CONFIG_HOME/opsdeck/config.toml, \
             /etc/opsdeck/config.toml); start from config.example.toml"
        );
        return exit::USAGE;
    };
    match Config::load(&path) {
        Err(errors) => {
            print_errors(&errors);
            eprintln!(
                "{}: invalid ({} error{})",
                path.display(),
                errors.len(),
                if errors.len() == 1 { "" } else { "s" }
            );
            exit::USAGE
        }
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            for c in &loaded.config.clusters {
                let kc = c
                    .kubeconfig
                    .as_ref()
                    .map_or("default KUBECONFIG rules".to_string(), |p| {
                        p.display().to_string()
                    });
                let ctx = c.context.as_deref().unwrap_or("(current context)");
                let prod = if c.protected { " [PROD]" } else { "" };
                println!("cluster {}{prod}: kubeconfig {kc}, context {ctx}", c.name);
                match resolve_api_server(c) {
                    Ok(server) => println!("  kubernetes: {server}"),
                    Err(e) => eprintln!("warning: cluster {}: {e}", c.name),
                }
                for (feature, table) in [
                    ("pgbouncer", &c.pgbouncer),
                    ("redis", &c.redis),
                    ("argocd", &c.argocd),
                ] {
                    if let Some(Ok(Some(ep))) =
                        table.as_ref().map(crate::config::Endpoint::from_table)
                    {
                        println!("  {feature}: {}", describe_endpoint(&ep));
                    }
                }
                let sources = c
                    .backups
                    .as_ref()
                    .and_then(|b| b.get("source"))
                    .and_then(|s| s.as_array());
                for src in sources.into_iter().flatten().filter_map(|s| s.as_table()) {
                    let name = src.get("name").and_then(|v| v.as_str()).unwrap_or("?");
                    let kind = src.get("kind").and_then(|v| v.as_str()).unwrap_or("?");
                    let place = match crate::config::Endpoint::from_table(src) {
                        Ok(Some(ep)) => describe_endpoint(&ep),
                        _ => src
                            .get("path")
                            .or(src.get("namespace"))
                            .and_then(|v| v.as_str())
                            .unwrap_or("")
                            .to_string(),
                    };
                    println!("  backups/{name} ({kind}): {place}");
                }
            }
            println!("{}: valid", path.display());
            exit::OK
        }
    }
}

/// Where a cluster's API server is, read from its kubeconfig and context (no request is made).
fn resolve_api_server(c: &crate::config::ClusterConfig) -> Result<String, String> {
    let kc = crate::config::load_kubeconfig(c)?;
    let ctx_name = c
        .context
        .clone()
        .or(kc.current_context.clone())
        .ok_or("the kubeconfig names no current context")?;
    let ctx = kc
        .contexts
        .iter()
        .find(|n| n.name == ctx_name)
        .and_then(|n| n.context.as_ref())
        .ok_or_else(|| format!("context {ctx_name:?} is not in the kubeconfig"))?;
    let cluster = kc
        .clusters
        .iter()
        .find(|n| n.name == ctx.cluster)
        .and_then(|n| n.cluster.as_ref())
        .ok_or_else(|| {
            format!(
                "cluster {:?} of context {ctx_name:?} is not in the kubeconfig",
                ctx.cluster
            )
        })?;
    cluster
        .server
        .clone()
        .ok_or_else(|| "the kubeconfig cluster has no server".to_string())
}

fn describe_endpoint(ep: &crate::config::Endpoint) -> String {
    match ep {
        crate::config::Endpoint::Service { .. } => format!("{ep} (through a port-forward)"),
        other => other.to_string(),
    }
}

/// Logs go to a file, never to the screen: $XDG_STATE_HOME/opsdeck/opsdeck.log.
/// The file is the user's alone (0600, in a 0700 folder, no symlink followed), and there is no
/// shared /tmp fallback: without a state folder there is no log.
fn init_logging() {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let Some(dir) = private_state_dir() else {
        return;
    };
    if std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .is_err()
    {
        return;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(dir.join("opsdeck.log"))
    else {
        return;
    };
    // A log an older opsdeck created 0644 becomes private too.
    if file
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .is_err()
    {
        return;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("OPSDECK_LOG")
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// $XDG_STATE_HOME/opsdeck when it is absolute (XDG), else ~/.local/state/opsdeck; None
/// without a home.
fn private_state_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::home_dir().map(|h| h.join(".local/state")))
        .map(|d| d.join("opsdeck"))
}

/// $XDG_STATE_HOME/opsdeck (or ~/.local/state/opsdeck).
pub fn state_dir() -> PathBuf {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir)
        .join("opsdeck")
}

fn no_config_notice() -> Vec<String> {
    [
        "opsdeck: no config found.",
        "",
        "Looked at --config, $OPSDECK_CONFIG, $XDG_CONFIG_HOME/opsdeck/config.toml and /etc/opsdeck/config.toml.",
        "",
        "To look around on a simulated fleet (two clusters, staging and production):",
        "    opsdeck demo",
        "",
        "To watch your own clusters, copy config.example.toml to ~/.config/opsdeck/config.toml,",
        "point each [[cluster]] at its kubeconfig and context, then check it with:",
        "    opsdeck config check",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn run_console(cli: &Cli) -> anyhow::Result<i32> {
    let loaded = match load_config(cli) {
        Err(errors) => {
            print_errors(&errors);
            return Ok(exit::USAGE);
        }
        Ok(l) => l,
    };
    init_logging();
    match loaded {
        None => {
            let (mut state, rx) = console_state(&Config::default(), cli);
            state.notice = Some(no_config_notice());
            crate::tui::run(state, rx, Theme::from_env()).await?;
        }
        Some((config, warnings)) => {
            let (mut state, rx) = console_state(&config, cli);
            state
                .warnings
                .extend(warnings.iter().map(|w| w.to_string()));
            crate::tui::run(state, rx, Theme::from_env()).await?;
        }
    }
    Ok(exit::OK)
}

/// The warning `runbook run` prints when `lock_dir` cannot be written and the run lock falls
/// back to another folder (other users' runs would not see the lock).
pub fn lock_dir_warning(config: &Config) -> Option<String> {
    crate::runbook::lock::usable_dir(&config.lock_dir, &config.fallback_lock_dir()).1
}

/// The console's initial state with every source spawned.
fn console_state(config: &Config, cli: &Cli) -> (AppState, crate::tui::Workers) {
    let user = Keymap::user_overrides_path();
    let keymap_name = if config.keymap.is_empty() {
        "default"
    } else {
        config.keymap.as_str()
    };
    let (keymap, warnings) = Keymap::load(keymap_name, user.as_deref());
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let mut state = AppState::new(config, keymap, jiff::Timestamp::now());
    state.warnings = warnings;
    state.read_only = cli.read_only;
    // The CLI prints this when a run starts; the console says it from the start.
    if !config.clusters.is_empty() {
        state.warnings.splice(0..0, lock_dir_warning(config));
    }
    let (catalog, problems) = crate::runbook::catalog(config.runbooks_dir.as_deref());
    state.runbooks = catalog.into_iter().map(|(r, _)| r).collect();
    state.warnings.extend(problems);
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let cancel = tokio_util::sync::CancellationToken::new();
    crate::sources::spawn_all(config, &tx, &cancel);
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = tokio::sync::mpsc::unbounded_channel();
    let executor = tokio::spawn(crate::runbook::session::executor(
        config.clone(),
        cli.read_only,
        cmd_rx,
        ev_tx,
    ));
    (
        state,
        crate::tui::Workers {
            config: config.clone(),
            sources: rx,
            forwards: crate::forward::Forwards::with_audit(
                config,
                Some(crate::runbook::audit::AuditLog::new(
                    config.audit_log.clone(),
                )),
            ),
            run_commands: cmd_tx,
            run_events: ev_rx,
            executor,
        },
    )
}

#[cfg(feature = "sim")]
async fn start_fleet() -> anyhow::Result<(crate::sim::Fleet, Config)> {
    let (fleet, mut config) = start_fleet_only().await?;
    // The fleet's files vanish on exit; its audit record must not.
    config.audit_log = demo_audit_log();
    Ok((fleet, config))
}

/// Where runs on the simulated fleet are recorded: kept apart from real runs.
pub fn demo_audit_log() -> PathBuf {
    state_dir().join("demo-audit.jsonl")
}

#[cfg(feature = "sim")]
async fn start_fleet_only() -> anyhow::Result<(crate::sim::Fleet, Config)> {
    let fleet = crate::sim::Fleet::start(crate::sim::SimOptions::default()).await?;
    let config = Config::load(fleet.config_path())
        .map_err(|e| {
            anyhow::anyhow!(
                "the simulated fleet wrote an invalid config: {}",
                e.first().map(|e| e.to_string()).unwrap_or_default()
            )
        })?
        .config;
    Ok((fleet, config))
}

#[cfg(feature = "sim")]
async fn run_demo(cli: &Cli) -> anyhow::Result<i32> {
    init_logging();
    let (fleet, config) = start_fleet().await?;
    let (state, rx) = console_state(&config, cli);
    let result = crate::tui::run(state, rx, Theme::from_env()).await;
    fleet.shutdown().await;
    result.map(|()| exit::OK)
}

#[cfg(feature = "sim")]
async fn run_sim(pods: usize) -> anyhow::Result<i32> {
    crate::sim::run_cli(crate::sim::SimOptions {
        pods,
        ..Default::default()
    })
    .await?;
    Ok(exit::OK)
}

#[cfg(not(feature = "sim"))]
async fn run_demo(_cli: &Cli) -> anyhow::Result<i32> {
    eprintln!("opsdeck: this build has no simulated fleet (built without the `sim` feature)");
    Ok(exit::USAGE)
}

#[cfg(not(feature = "sim"))]
async fn run_sim(_pods: usize) -> anyhow::Result<i32> {
    eprintln!("opsdeck: this build has no simulated fleet (built without the `sim` feature)");
    Ok(exit::USAGE)
}

async fn run_status(cli: &Cli, args: &StatusArgs) -> anyhow::Result<i32> {
    #[cfg(feature = "sim")]
    let mut fleet = None;
    let mut config = if cli.demo {
        #[cfg(feature = "sim")]
        {
            let (f, c) = start_fleet().await?;
            fleet = Some(f);
            c
        }
        #[cfg(not(feature = "sim"))]
        {
            eprintln!(
                "opsdeck: this build has no simulated fleet (built without the `sim` feature)"
            );
            return Ok(exit::USAGE);
        }
    } else {
        match load_config(cli) {
            Err(errors) => {
                print_errors(&errors);
                return Ok(exit::USAGE);
            }
            Ok(None) => {
                eprintln!(
                    "opsdeck: no config found; try `opsdeck status --demo`, or write one (see config.example.toml)"
                );
                return Ok(exit::USAGE);
            }
            Ok(Some((c, _))) => c,
        }
    };
    if let Some(name) = &args.cluster {
        if config.cluster(name).is_none() {
            let names: Vec<_> = config.clusters.iter().map(|c| c.name.as_str()).collect();
            eprintln!(
                "opsdeck: no cluster named {name:?}; configured: {}",
                names.join(", ")
            );
            return Ok(exit::USAGE);
        }
        config.clusters.retain(|c| &c.name == name);
    }
    let state = crate::status::collect(&config, args.timeout).await;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::status::to_json(&state))?
        );
    } else {
        print!("{}", crate::status::to_text(&state));
    }
    #[cfg(feature = "sim")]
    if let Some(f) = fleet {
        f.shutdown().await;
    }
    Ok(crate::status::exit_code(&state))
}
