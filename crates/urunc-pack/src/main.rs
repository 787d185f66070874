//! `urunc-pack`: pack a unikernel (or Linux kernel) and its urunc metadata
//! into an OCI image archive. See the library documentation for the layout.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use urunc_pack::{pack, PackOptions};

/// Build an OCI image archive (oci-archive) for urunc from local files.
///
/// Prints the manifest digest on success. Load the result with
/// `ctr image import OUT.tar`, `podman load -i OUT.tar` or
/// `skopeo copy oci-archive:OUT.tar ...`.
#[derive(Parser, Debug)]
#[command(name = "urunc-pack", version)]
struct Cli {
    /// Kernel image; stored as /unikernel/<basename> (metadata `binary`).
    #[arg(long, value_name = "PATH")]
    kernel: PathBuf,
    /// Framework: unikraft, rumprun, mirage, mewz or linux.
    #[arg(long, value_name = "FRAMEWORK")]
    unikernel_type: String,
    /// Monitor: qemu, firecracker, hvt or spt.
    #[arg(long, value_name = "MONITOR")]
    hypervisor: String,
    /// Application command line (used when the container has no args).
    #[arg(long, value_name = "STR", allow_hyphen_values = true)]
    cmdline: Option<String>,
    /// Initrd; stored as /unikernel/<basename>.
    #[arg(long, value_name = "PATH")]
    initrd: Option<PathBuf>,
    /// Disk image; stored as /unikernel/<basename>.
    #[arg(long, value_name = "PATH")]
    block: Option<PathBuf>,
    /// Where the guest mounts the disk.
    #[arg(long, value_name = "STR")]
    blk_mnt_point: Option<String>,
    /// Framework version (e.g. Unikraft 0.15.0 takes older arguments).
    #[arg(long, value_name = "STR")]
    unikernel_version: Option<String>,
    /// Hand the devmapper snapshot behind the rootfs to the guest.
    #[arg(long)]
    use_dm_block: bool,
    /// Share or hand over the container rootfs to the guest.
    #[arg(long)]
    mount_rootfs: bool,
    /// Directory whose contents go to the root of the image.
    #[arg(long, value_name = "DIR")]
    files: Option<PathBuf>,
    /// Extra annotation and label KEY=VALUE (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// A port the unikernel serves, PORT[/tcp|udp] (repeatable): the image
    /// config's ExposedPorts and what urunc's shared network mode forwards.
    #[arg(long = "port", value_name = "PORT[/PROTO]")]
    ports: Vec<String>,
    /// Image name [DOMAIN/]PATH[:TAG], normalised like docker
    /// (default: localhost/<kernel file name>:latest).
    #[arg(long = "ref", value_name = "NAME[:TAG]")]
    reference: Option<String>,
    /// Image architecture.
    #[arg(long, value_name = "ARCH", default_value = "amd64")]
    arch: String,
    /// Output archive.
    #[arg(short = 'o', long = "output", value_name = "OUT.tar")]
    output: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = PackOptions {
        kernel: cli.kernel,
        unikernel_type: cli.unikernel_type,
        hypervisor: cli.hypervisor,
        cmdline: cli.cmdline,
        initrd: cli.initrd,
        block: cli.block,
        blk_mnt_point: cli.blk_mnt_point,
        unikernel_version: cli.unikernel_version,
        use_dm_block: cli.use_dm_block,
        mount_rootfs: cli.mount_rootfs,
        files: cli.files,
        annotations: cli.annotations,
        ports: cli.ports,
        reference: cli.reference,
        architecture: Some(cli.arch),
        output: cli.output,
    };
    match pack(&opts) {
        Ok(out) => {
            eprintln!(
                "urunc-pack: wrote {} as {}",
                opts.output.display(),
                out.image_name
            );
            println!("{}", out.manifest_digest);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("urunc-pack: {e}");
            ExitCode::FAILURE
        }
    }
}
