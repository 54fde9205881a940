#!/usr/bin/env bash
# Install everything ktui needs on Debian/Ubuntu, idempotently:
#   system packages (BCC, kernel headers, tools), .venv/ made with the system's
#   python3, and ktui installed into it editable with its test extras.
#
#   scripts/setup.sh             the app and its tests
#   scripts/setup.sh --kernel-vm also the kprobe VM harness (QEMU, Debian's kernel
#                                with matching headers, virtme-ng in .venv-vng/)
#   scripts/setup.sh --check     say what is missing, change nothing (exit 1 if anything is)
#
# Fast when already done: dpkg is asked which packages are present, apt is only
# touched for missing ones, `apt-get update` only when the lists are missing, lack a
# package or fail an install, pip only when pyproject.toml changed since the last install.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

want_vm=0
check_only=0
for arg in "$@"; do
    case "$arg" in
        --kernel-vm) want_vm=1 ;;
        --check) check_only=1 ;;
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup: unknown option $arg (try --help)" >&2; exit 2 ;;
    esac
done

say() { echo "setup: $*" >&2; }
die() { echo "setup: $*" >&2; exit 1; }

# BCC is imported from the distribution (ktui/bccload.py), so the venv is built on the
# distribution's own interpreter, not whichever python3 comes first on PATH (pyenv, conda).
PY=${KTUI_PYTHON:-/usr/bin/python3}
VNG_VERSION=1.42  # pinned: the harness depends on its command line and guest init

installed() {  # installed PKG: is the package fully installed?
    [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) == "ii "* ]]
}

candidate() {  # candidate PKG: the version apt would install, empty when none
    local v
    v=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
    [[ -n $v && $v != "(none)" ]] && echo "$v"
    return 0
}

no_lists() {  # a fresh image often ships without package lists
    [[ -z $(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' 2>/dev/null | head -1) ]]
}

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "missing system packages and not root (no sudo either): run this script as root."
    fi
}

apt_get() {
    as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a apt-get -y -q \
        -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef \
        -o Dpkg::Options::=--force-confold "$@"
}

command -v dpkg-query >/dev/null || die "this script needs a Debian or Ubuntu system (dpkg, apt-get)."
arch=$(dpkg --print-architecture)
# shellcheck source=/dev/null
distro=$(. /etc/os-release 2>/dev/null && echo "${ID:-debian}")
case "$distro" in
    ubuntu) flavour=generic ;;
    *) flavour=$arch ;;  # Debian: linux-image-amd64, linux-headers-amd64
esac

# Required: without these ktui cannot trace or its venv cannot be built.
required=(python3 python3-venv python3-bpfcc libbpfcc gcc make)
# Wanted: tools ktui and its tests use when present (some have other names on Ubuntu);
# openssh-client, openssh-server, iproute2 and util-linux (unshare) for the --host tests
# (network namespaces, each with its own sshd).
wanted=(bpfcc-tools bpftool bpftrace tmux openssh-server openssh-client iproute2 util-linux shellcheck git)
# The ring reader's ordering helper built for aarch64 and run under emulation
# (tests/test_ordering_arm64.py); its C library is only a recommendation of the cross compiler.
[[ $arch == arm64 ]] || wanted+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)

# Kernel headers: the running kernel's own when the archive has them, else the
# distribution's generic ones (ktui/headers.py merges those into its cache).
release=$(uname -r)
if installed "linux-headers-$release" || [[ -n $(candidate "linux-headers-$release") ]]; then
    required+=("linux-headers-$release")
else
    required+=("linux-headers-$flavour")
fi
if ((want_vm)); then
    required+=(qemu-system-x86 busybox-static "linux-image-$flavour" "linux-headers-$flavour")
fi

missing_required=()
missing_wanted=()
for p in "${required[@]}"; do installed "$p" || missing_required+=("$p"); done
for p in "${wanted[@]}"; do installed "$p" || missing_wanted+=("$p"); done

# The VM boots the image and compiles against the headers: their versions must agree.
vm_versions_differ=0
if ((want_vm)) && installed "linux-image-$flavour" && installed "linux-headers-$flavour"; then
    img=$(dpkg-query -W -f='${Version}' "linux-image-$flavour")
    hdr=$(dpkg-query -W -f='${Version}' "linux-headers-$flavour")
    [[ $img == "$hdr" ]] || vm_versions_differ=1
fi

stamp=.venv/.ktui-setup
stamp_of() { echo "$(sha256sum pyproject.toml | cut -d' ' -f1) $($PY -c 'import sys; print(sys.version)' 2>/dev/null | head -1)"; }
stamp_text=$(stamp_of)
launcher_text() {  # the launcher for this checkout, or nothing when its path is not plain
    [[ $repo =~ ^[A-Za-z0-9_./+-]+$ && ${#repo} -lt 100 ]] || return 0
    printf '%s\n' "#!$repo/.venv/bin/python -S" \
        "# written by scripts/setup.sh: start-up without the site machinery (see ktui/launch.py)" \
        "import sys" "sys.path.insert(0, \"$repo\")" "from ktui.launch import main" \
        "sys.exit(main(site_deferred=True))"
}
launcher_ok() { [[ -z $(launcher_text) || "$(cat .venv/bin/ktui 2>/dev/null)" == "$(launcher_text)" ]]; }
write_launcher() {
    launcher_ok && return 0
    launcher_text >.venv/bin/.ktui-launcher
    chmod 755 .venv/bin/.ktui-launcher
    mv -f .venv/bin/.ktui-launcher .venv/bin/ktui
}
venv_ok=0
if [[ -x .venv/bin/ktui && -x .venv/bin/python && -f $stamp && $(cat "$stamp") == "$stamp_text" ]] \
    && .venv/bin/python -c 'import ktui' 2>/dev/null; then
    venv_ok=1
fi
vng_ok=1
if ((want_vm)); then
    [[ -x .venv-vng/bin/vng && $(.venv-vng/bin/vng --version 2>/dev/null) == *"$VNG_VERSION"* ]] || vng_ok=0
fi

if ((check_only)); then
    todo=0
    ((${#missing_required[@]})) && { say "missing packages: ${missing_required[*]}"; todo=1; }
    ((${#missing_wanted[@]})) && say "missing optional packages: ${missing_wanted[*]}"
    ((vm_versions_differ)) && { say "linux-image-$flavour and linux-headers-$flavour versions differ"; todo=1; }
    ((venv_ok)) || { say ".venv/ needs (re)installing ktui"; todo=1; }
    ((venv_ok)) && ! launcher_ok && { say ".venv/bin/ktui needs its launcher"; todo=1; }
    ((vng_ok)) || { say ".venv-vng/ needs virtme-ng $VNG_VERSION"; todo=1; }
    ((todo)) || say "nothing to do"
    exit "$todo"
fi

# --- system packages ---------------------------------------------------------
if ((${#missing_required[@]} + ${#missing_wanted[@]} + vm_versions_differ)); then
    updated=0
    need_update=0
    no_lists && need_update=1
    for p in "${missing_required[@]}"; do [[ -n $(candidate "$p") ]] || need_update=1; done
    if ((need_update)); then say "apt-get update"; apt_get update >&2; updated=1; fi

    to_install=()
    for p in "${missing_required[@]}"; do
        [[ -n $(candidate "$p") ]] || die "package $p is not available from apt on this system; install it and re-run."
        to_install+=("$p")
    done
    for p in "${missing_wanted[@]}"; do
        if [[ -n $(candidate "$p") ]]; then to_install+=("$p"); else say "skipping $p: not available here"; fi
    done
    if ((want_vm)); then
        # Pin image and headers to one version so the guest kernel has its own headers.
        v=$(candidate "linux-image-$flavour")
        [[ $(candidate "linux-headers-$flavour") == "$v" ]] \
            || die "apt offers linux-image-$flavour $v but linux-headers-$flavour $(candidate "linux-headers-$flavour"): the VM needs matching versions."
        for i in "${!to_install[@]}"; do
            case "${to_install[$i]}" in "linux-image-$flavour"|"linux-headers-$flavour") unset "to_install[$i]" ;; esac
        done
        to_install+=("linux-image-$flavour=$v" "linux-headers-$flavour=$v")
    fi
    if ((${#to_install[@]})); then
        say "apt-get install ${to_install[*]}"
        if ! apt_get install --no-install-recommends "${to_install[@]}" >&2; then
            ((updated)) && die "apt-get install failed."
            say "install failed with the current lists; refreshing them once"
            apt_get update >&2
            apt_get install --no-install-recommends "${to_install[@]}" >&2 || die "apt-get install failed."
        fi
    fi
fi

# --- ktui's virtual environment ----------------------------------------------
[[ -x $PY ]] || die "$PY is missing (install python3)."
$PY -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "ktui needs Python 3.11 or newer; $PY is $($PY -V 2>&1)."
if ((!venv_ok)); then
    if ! .venv/bin/python -c 'import sys' 2>/dev/null; then
        say "creating .venv with $PY"
        rm -rf .venv
        $PY -m venv .venv
    fi
    say "installing ktui into .venv (pip install -e '.[test]', editable_mode=compat)"
    log=$(mktemp)
    # compat: a plain path in a .pth file, not setuptools' import-hook finder, which every Python
    # start-up in the venv would import (pathlib, urllib, ipaddress): more than `ktui list` spends
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' \
        --config-settings editable_mode=compat >"$log" 2>&1 \
        || { cat "$log" >&2; rm -f "$log"; die "pip install -e '.[test]' failed (its output is above)."; }
    rm -f "$log"
    [[ -x .venv/bin/ktui ]] || die "pip finished but .venv/bin/ktui is missing."
    stamp_of >"$stamp"  # anew: apt may have just installed the interpreter
fi

# --- the `ktui` launcher ------------------------------------------------------
# pip's console script starts Python with the site machinery (every .pth file of the venv), and
# imports re for its argv[0] rewrite: together more than `ktui list 'tracepoint:sched:*'` spends on
# its answer (issue 17). The launcher starts Python with -S and puts this checkout first on the path
# itself (what the editable install's .pth does); ktui/launch.py runs site.main() before every
# command that needs the venv's packages. A path that cannot be written plainly into a #! line or a
# Python string keeps pip's script (slower start, same behaviour).
write_launcher

# --- the ring reader's memory-ordering helper ---------------------------------
# Acquire loads and release stores for aarch64 (ktui/engine/ordering.c; plain moves on x86-64,
# where ktui does not need it). Built on every machine so the same code path can be tested here.
helper=ktui/engine/_ordering.so
if [[ ! -e $helper || ktui/engine/ordering.c -nt $helper ]]; then
    say "building $helper (acquire/release loads for the ring reader)"
    if ! { gcc -O2 -shared -fPIC -o "$helper.tmp" ktui/engine/ordering.c && mv -f "$helper.tmp" "$helper"; }; then
        die "gcc could not build $helper from ktui/engine/ordering.c."
    fi
fi

# --- the VM harness's own tool venv --------------------------------------------
# virtme-ng lives apart from ktui's venv: it is a host-side tool, not a ktui
# dependency, and its requirements must not shift the versions ktui is tested with.
if ((want_vm && !vng_ok)); then
    say "installing virtme-ng $VNG_VERSION into .venv-vng"
    [[ -x .venv-vng/bin/python ]] || { rm -rf .venv-vng; $PY -m venv .venv-vng; }
    echo '*' >.venv-vng/.gitignore
    .venv-vng/bin/python -m pip install -q --disable-pip-version-check "virtme-ng==$VNG_VERSION" >&2 \
        || die "pip could not install virtme-ng $VNG_VERSION."
fi

say "ready"
