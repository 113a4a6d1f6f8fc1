"""check_dockerfiles.py -- static checks of docker/: every image the charts run has a Dockerfile
that builds its CMake target in the shared build stage and runs it as the ENTRYPOINT on the
shared runtime base as user 10001; the runtime packages are exactly what the built binary
uses (the ELF NEEDED libraries it imports symbols from, mapped to Debian packages with ldconfig
and dpkg); every package
exists in Debian (apt-cache show); build.sh builds every image in order.

Usage: check_dockerfiles.py --docker DIR --charts DIR --helm PATH --build-dir DIR --version X
                            --binary NAME=PATH ...   (PATH empty when NAME is no CMake target)
There is no Docker engine here, so nothing is built: the files are read and compared.
Exits 77 (CTest's skip code) when a check was skipped because helm is not installed.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

import yaml

ARGS = None
SKIP = 77  # CTest's SKIP_RETURN_CODE for this test (docker/CMakeLists.txt)
RUNTIME_USER = "10001:10001"
BASE_IMAGE = "debian:12-slim"
# In debian:12-slim already, so no Dockerfile installs them.
BASE_PACKAGES = {"libc6", "libgcc-s1", "zlib1g"}
# Linked into sanitizer builds of the tree only (MR_SANITIZE), never into an image.
SANITIZER_PACKAGES = {"libasan8", "libubsan1"}
# Libraries a binary loads with dlopen when its configuration needs them (libs/core dl.h), not
# linked: a binary that names one needs its package as much as a NEEDED one.
ON_DEMAND_SONAMES = ["librdkafka.so.1"]
# What every image gets from runtime.Dockerfile beyond libraries.
# tzdata: schedules read their timezone from the system's zone files (libs/core tz.c).
RUNTIME_BASE_PACKAGES = {"ca-certificates", "tzdata"}
# Where the build stage has scripts/build-http-deps.sh put the static libcurl and libmicrohttpd.
HTTP_DEPS = "/deps"


def parse(path):
    """A Dockerfile as [(INSTRUCTION, arguments)], continuation lines joined, comments dropped."""
    out, pending = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = pending + line
            pending = ""
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
    return out


def stages(instructions):
    """[(FROM arguments, [(INSTRUCTION, arguments)...])] per build stage."""
    result = []
    for ins, arg in instructions:
        if ins == "FROM":
            result.append((arg, []))
        elif result:
            result[-1][1].append((ins, arg))
    return result


def apt_packages(instructions):
    """The packages of every `apt-get install` in RUN instructions."""
    pkgs = []
    for ins, arg in instructions:
        if ins != "RUN":
            continue
        for command in re.split(r"&&|;", arg):
            words = shlex.split(command)
            while words and "=" in words[0]:
                words.pop(0)  # DEBIAN_FRONTEND=noninteractive
            if words[:2] == ["apt-get", "install"]:
                pkgs += [w for w in words[2:] if not w.startswith("-")]
    return pkgs


def service_dockerfiles():
    return sorted(f[: -len(".Dockerfile")] for f in os.listdir(ARGS.docker)
                  if f.startswith("mindroom") and f.endswith(".Dockerfile"))


def dockerfile(name):
    return os.path.join(ARGS.docker, name + ".Dockerfile")


def dynamic_symbols(path, which):
    """Names of the dynamic symbols of an ELF file, --defined-only or --undefined-only."""
    out = subprocess.run(["nm", "-D", which, path], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


LIBRARY_SYMBOLS = {}


def needed_packages(binary):
    """The Debian packages of the shared libraries a binary uses: its NEEDED entries whose library
    defines a symbol the binary imports, and the ON_DEMAND_SONAMES it names. (A sanitizer build
    links without --as-needed, so its NEEDED list also names libraries nothing in the binary
    calls.)"""
    dynamic = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True, check=True).stdout
    sonames = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dynamic)
    with open(binary, "rb") as f:
        text = f.read()
    on_demand = [so for so in ON_DEMAND_SONAMES if b"\0" + so.encode() + b"\0" in text]
    imports = dynamic_symbols(binary, "--undefined-only")
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    paths = {}
    # ldconfig lists the library the loader prefers first.
    for m in re.finditer(r"^\s*(\S+) \([^)]*\) => (\S+)$", cache, re.M):
        paths.setdefault(m.group(1), m.group(2))
    pkgs = {}
    for so in sonames:
        path = paths.get(so)
        if not path:
            raise AssertionError(f"{binary}: ldconfig does not know {so}")
        if path not in LIBRARY_SYMBOLS:
            LIBRARY_SYMBOLS[path] = dynamic_symbols(path, "--defined-only")
        if imports & LIBRARY_SYMBOLS[path]:
            pkgs[so] = package_of(path)
    for so in on_demand:
        if so not in paths:
            raise AssertionError(f"{binary}: ldconfig does not know {so}, which it loads on demand")
        pkgs[so] = package_of(paths[so])
    return pkgs


def package_of(path):
    """dpkg -S, trying the path as linked and as installed (Debian 12 merges /lib into /usr/lib)."""
    real = os.path.realpath(path)
    for candidate in (path, real, "/usr" + path, "/usr" + real):
        r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout.split(":")[0]
    raise AssertionError(f"dpkg -S finds no package for {path}")


class Dockerfiles(unittest.TestCase):
    def test_build_stage_configures_release_with_werror(self):
        ins = parse(dockerfile("build"))
        self.assertEqual([a for i, a in ins if i == "FROM"], [BASE_IMAGE])
        self.assertIn(("COPY", ". /src"), ins)
        runs = [a for i, a in ins if i == "RUN"]
        configure = [a for a in runs if a.startswith("cmake ")]
        self.assertEqual(configure, ["cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMR_WERROR=ON "
                                     f"-DMR_HTTP_DEPS_PREFIX={HTTP_DEPS}"])
        # libcurl and libmicrohttpd as `make deps` builds them, before the tree is configured.
        script = "scripts/build-http-deps.sh"
        self.assertIn(("COPY", f"{script} /src/{script}"), ins)
        self.assertIn(f"/src/{script} {HTTP_DEPS}", runs)
        self.assertLess(runs.index(f"/src/{script} {HTTP_DEPS}"), runs.index(configure[0]))
        self.assertLessEqual({"dpkg-dev", "zlib1g-dev", "cmake", "gcc", "make"}, set(apt_packages(ins)),
                             f"build.Dockerfile lacks what {script} needs")

    def test_build_stage_has_every_pkg_config_module_the_tree_requires(self):
        """Each pkg_check_modules(... REQUIRED ...) of the CMake files, mapped to the package
        holding its .pc file, is installed in the build stage."""
        modules = set()
        for top, dirs, files in os.walk(ARGS.source):
            dirs[:] = [d for d in dirs if not d.startswith(("build", ".git"))]
            if "CMakeLists.txt" in files:
                with open(os.path.join(top, "CMakeLists.txt")) as f:
                    text = f.read()
                    for m in re.finditer(r"pkg_check_modules\(\w+ REQUIRED(?: IMPORTED_TARGET)? ([^)]+)\)", text):
                        modules.update(m.group(1).split())
                    # The top level finds its libraries in one loop over NAME:module pairs.
                    for m in re.finditer(r"foreach\(dep ([^)]+)\)", text):
                        modules.update(w.split(":", 1)[1] for w in m.group(1).split() if ":" in w)
        self.assertIn("libjwt", modules)
        installed = set(apt_packages(parse(dockerfile("build"))))
        for module in sorted(modules):
            pc = subprocess.run(["pkg-config", "--path", module], capture_output=True, text=True)
            self.assertEqual(pc.returncode, 0, f"pkg-config --path {module}: {pc.stderr}")
            pkg = package_of(pc.stdout.strip())
            self.assertIn(pkg, installed, f"build.Dockerfile lacks {pkg}, which has {module}.pc")

    def test_runtime_base_runs_as_user_10001(self):
        ins = parse(dockerfile("runtime"))
        self.assertEqual([a for i, a in ins if i == "FROM"], [BASE_IMAGE])
        self.assertEqual(ins[-1], ("USER", RUNTIME_USER))
        run = " ".join(a for i, a in ins if i == "RUN")
        self.assertIn("useradd --system --uid 10001 --gid 10001", run)
        self.assertEqual(set(apt_packages(ins)), RUNTIME_BASE_PACKAGES)
        self.assertIn(("ENV", "MINDROOM_STORAGE_PATH=/var/lib/mindroom"), ins)

    def test_each_service_dockerfile_builds_and_runs_its_own_target(self):
        names = service_dockerfiles()
        self.assertIn("mindroom", names)
        for name in names:
            with self.subTest(dockerfile=name):
                ins = parse(dockerfile(name))
                self.assertEqual(ins[0], ("ARG", f"VERSION={ARGS.version}"))
                st = stages(ins)
                (build_from, build), (run_from, run) = st[0], st[-1]
                self.assertEqual(build_from, "mindroom-build:${VERSION} AS build")
                self.assertEqual(build, [("RUN", f'cmake --build /build --target {name} -j"$(nproc)"')])
                self.assertEqual(run_from, "mindroom-runtime:${VERSION}")
                # Stages between prepare files for the image (the platform's helm and chart);
                # each starts from a pinned image and is named.
                helpers = set()
                for helper_from, _ in st[1:-1]:
                    image, _, alias = helper_from.partition(" AS ")
                    self.assertRegex(image, r":[0-9][^ ]*$", f"{name}: stage {helper_from} is not pinned")
                    self.assertTrue(alias, f"{name}: stage {helper_from} has no name")
                    helpers.add(alias)
                copies = [a for i, a in run if i == "COPY"]
                binary = [c for c in copies if c.startswith("--from=build ")]
                self.assertEqual(binary, [f"--from=build /build/{self.build_path(name)} /usr/local/bin/{name}"])
                others = [c for c in copies if c not in binary]
                self.assertEqual([c for c in others if c.split()[0].removeprefix("--from=") not in helpers], [],
                                 f"{name}: the image copies only the binary and what its helper stages made")
                entry = [a for i, a in run if i == "ENTRYPOINT"]
                self.assertEqual([json.loads(e) for e in entry], [[name]])
                # Kubernetes probes the services; an image HEALTHCHECK would only duplicate them.
                self.assertNotIn("HEALTHCHECK", [i for i, _ in ins])
                # root only for apt-get; the image ends as the unprivileged user.
                self.assertEqual([a for i, a in run if i == "USER"], ["root", RUNTIME_USER])

    def build_path(self, name):
        """Where the CMake target's binary sits, relative to the build tree."""
        path = ARGS.binaries.get(name)
        self.assertTrue(path, f"docker/{name}.Dockerfile builds {name}, which is not a CMake target")
        return os.path.relpath(path, ARGS.build_dir)

    def test_runtime_packages_are_exactly_what_each_binary_links(self):
        for name in service_dockerfiles():
            with self.subTest(dockerfile=name):
                binary = ARGS.binaries.get(name)
                self.assertTrue(binary, f"{name} is not a CMake target")
                self.assertTrue(os.path.exists(binary), f"{binary} is not built; build the {name} target first")
                needed = needed_packages(binary)
                want = set(needed.values()) - BASE_PACKAGES - SANITIZER_PACKAGES
                run = stages(parse(dockerfile(name)))[-1][1]
                have = set(apt_packages(run))
                self.assertEqual(sorted(want - have), [], f"{name} links {needed}; its image lacks these packages")
                self.assertEqual(sorted(have - want), [], f"{name} links {needed}; its image installs more")

    def test_every_package_exists_in_debian(self):
        # Debian always has apt-cache: its absence is a broken machine, not a reason to skip.
        apt_cache = shutil.which("apt-cache")
        self.assertTrue(apt_cache, "no apt-cache on PATH: this check runs on Debian, which has it")
        pkgs = set()
        for name in ["build", "runtime", *service_dockerfiles()]:
            pkgs.update(apt_packages(parse(dockerfile(name))))
        self.assertIn("libjansson4", pkgs)
        for pkg in sorted(pkgs):
            r = subprocess.run([apt_cache, "show", "--no-all-versions", pkg], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, f"apt-cache show {pkg}: not a Debian package ({r.stderr.strip()})")
            self.assertIn(f"Package: {pkg}\n", r.stdout)

    def test_build_script_builds_the_shared_stages_then_every_image(self):
        env = dict(os.environ, DOCKER="echo docker")
        r = subprocess.run([os.path.join(ARGS.docker, "build.sh")], capture_output=True, text=True, env=env,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        root = os.path.dirname(os.path.abspath(ARGS.docker))
        lines = r.stdout.splitlines()
        self.assertEqual(lines[:2], [
            f"docker build -f {ARGS.docker}/build.Dockerfile -t mindroom-build:{ARGS.version} {root}",
            f"docker build -f {ARGS.docker}/runtime.Dockerfile -t mindroom-runtime:{ARGS.version} {ARGS.docker}"])
        # The shell's glob order depends on the locale; the set of images does not.
        self.assertEqual(sorted(lines[2:]), sorted(
            f"docker build --build-arg VERSION={ARGS.version} -f {ARGS.docker}/{n}.Dockerfile "
            f"-t {n}:{ARGS.version} {ARGS.docker}" for n in service_dockerfiles()))


class ChartImages(unittest.TestCase):
    """The images the charts run are the Dockerfiles' images, with the binary as the command."""

    def containers(self, chart):
        helm = ARGS.helm if ARGS.helm and os.access(ARGS.helm, os.X_OK) else shutil.which("helm")
        if not helm:
            self.skipTest(f"helm is not installed (not at {ARGS.helm} nor on PATH); run `make helm`")
        with tempfile.TemporaryDirectory() as home:
            env = dict(os.environ, HELM_CACHE_HOME=home, HELM_CONFIG_HOME=home, HELM_DATA_HOME=home)
            # A scratch copy with the mindroom-common dependency built, as an operator renders it.
            charts = os.path.join(home, "charts")
            shutil.copytree(ARGS.charts, charts)
            r = subprocess.run([helm, "dependency", "build", os.path.join(charts, chart)], capture_output=True,
                               text=True, env=env, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr)
            r = subprocess.run([helm, "template", "rel", os.path.join(charts, chart)], capture_output=True,
                               text=True, env=env, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        docs = [d for d in yaml.safe_load_all(r.stdout) if d and d["kind"] == "Deployment"]
        return [c for d in docs for c in d["spec"]["template"]["spec"]["containers"]]

    def test_every_chart_image_has_its_dockerfile(self):
        seen = []
        for chart in ("instance", "platform"):
            for c in self.containers(chart):
                image, _, tag = c["image"].rpartition(":")
                with self.subTest(chart=chart, image=c["image"]):
                    self.assertTrue(os.path.exists(dockerfile(image)), f"no docker/{image}.Dockerfile")
                    self.assertEqual(tag, ARGS.version, "the chart's default tag is not the version build.sh tags")
                    entry = [json.loads(a) for i, a in parse(dockerfile(image)) if i == "ENTRYPOINT"]
                    self.assertEqual(entry, [c["command"]])
                    seen.append(image)
        self.assertEqual(sorted(seen), sorted(["mindroom-gateway", "mindroom-crypto", "mindroom-authz",
                                               "mindroom-agent", "mindroom-upstream-auth",
                                               "mindroom-provisioning", "mindroom-platform"]))
        self.assertEqual(sorted(set(service_dockerfiles()) - set(seen)), ["mindroom"])


class ParserSelfCheck(unittest.TestCase):
    """The checks above rely on the parser; it must see through continuations and comments."""

    def test_parser(self):
        with tempfile.NamedTemporaryFile("w", suffix=".Dockerfile", delete=False) as f:
            f.write("# c\nFROM a AS b\nRUN apt-get update \\\n && X=1 apt-get install -y --no-install-recommends \\\n"
                    "      p1 p2 \\\n && rm -rf x\n\nFROM c\nENTRYPOINT [\"e\"]\n")
        try:
            ins = parse(f.name)
        finally:
            os.unlink(f.name)
        self.assertEqual(stages(ins), [("a AS b", [("RUN", "apt-get update && X=1 apt-get install -y "
                                                           "--no-install-recommends p1 p2 && rm -rf x")]),
                                       ("c", [("ENTRYPOINT", '["e"]')])])
        self.assertEqual(apt_packages(ins), ["p1", "p2"])


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--docker", required=True)
    ap.add_argument("--charts", required=True)
    ap.add_argument("--helm")
    ap.add_argument("--build-dir", required=True)
    ap.add_argument("--version", required=True)
    ap.add_argument("--binary", action="append", default=[], metavar="NAME=PATH")
    args, rest = ap.parse_known_args()
    args.docker = os.path.abspath(args.docker)
    args.source = os.path.dirname(args.docker)
    args.binaries = dict(b.split("=", 1) for b in args.binary)
    ARGS = args
    result = unittest.main(argv=[sys.argv[0], *rest], exit=False, verbosity=2).result
    if not result.wasSuccessful():
        return 1
    # A check that could not run (helm missing) is reported to CTest as skipped, never passed.
    return SKIP if result.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
