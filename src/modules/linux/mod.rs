//! Linux system modules over SSH: systemd_service/service, get_url, unarchive, reboot, apt,
//! dnf/yum, ufw (community.general),
//! package, package_facts, user, group, sysctl, pip, uri, git,
//! service_facts, mount (ansible.posix), modprobe and pacman (community.general).
//!
//! Like the file modules, each one reads what it needs from the target in one `sh` round trip
//! (scripts built with `files::remote`), decides on the controller, and changes the target in
//! as few further round trips as it can. Arguments and return values follow ansible-core's
//! modules of the same names.

mod apt;
mod dnf;
mod get_url;
mod git;
mod modprobe;
mod mount;
mod package;
mod pacman;
mod pip;
mod reboot;
mod service_facts;
mod sysctl;
mod systemd;
mod ufw;
mod unarchive;
mod uri;
mod user;

use super::Module;

pub static MODULES: &[&dyn Module] = &[
    &systemd::SYSTEMD_SERVICE,
    &systemd::SYSTEMD,
    &systemd::Service,
    &get_url::GetUrl,
    &unarchive::Unarchive,
    &reboot::Reboot,
    &apt::Apt,
    &dnf::Dnf,
    &dnf::Yum,
    &package::Package,
    &package::PackageFacts,
    &user::User,
    &user::Group,
    &sysctl::Sysctl,
    &pip::Pip,
    &uri::Uri,
    &git::Git,
    &service_facts::ServiceFacts,
    &ufw::Ufw,
    &mount::Mount,
    &modprobe::Modprobe,
    &pacman::Pacman,
];

pub use dnf::NOT_IMPLEMENTED as DNF_NOT_IMPLEMENTED;

const BUILTIN: &[&str] = &["ansible.builtin"];
