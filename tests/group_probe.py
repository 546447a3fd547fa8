"""A consumer group's state and members, asked from a child process.

librdkafka 2.16.0 aborts the whole process when a coordinator admin request
(DescribeConsumerGroups and the like) meets a connection that drops: the request's error path
frees the request's once-only reply slot, and the late error response frees it again
(`rd_kafka_enq_once_del_source_return: Assertion 'eonce->refcnt > 0'`, in
`rd_kafka_admin_coord_response_parse`; confluentinc/librdkafka#4605, fix proposed in #5397).
The chaos suite kills the broker while its fleet asks who serves a role, so that question is
asked here, in a child that may die, and never in the test's own process (docs/chaos.md
finding 10). The engine itself makes no such request.

The child reads one group name per line on stdin and answers one JSON line on stdout:
`{"state": <ConsumerGroupState name>, "members": [[member_id, partitions], ...]}`, or
`{"error": "..."}` after which it exits, so the next question gets a fresh client (an old
client's group requests could time out for good after a broker restart).
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient

Members = list[tuple[str, int]]


class GroupProbe:
    """The test side: one child at a time, started again whenever it died or went quiet."""

    def __init__(self, bootstrap: str, answer_within_s: float = 15.0) -> None:
        self._bootstrap = bootstrap
        self._answer_within_s = answer_within_s
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one question at a time on the child's pipes
        self.aborts = 0  # children that librdkafka aborted (SIGABRT): the report shows them

    def describe(self, group: str) -> tuple[ConsumerGroupState, Members]:
        """The group's state and members; UNKNOWN and none when no answer came (a broker
        restarting, a coordinator moving, a child that aborted): the caller asks again."""
        with self._lock:
            return self._ask(group)

    def _ask(self, group: str) -> tuple[ConsumerGroupState, Members]:
        child = self._running()
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(group.encode() + b"\n")
            child.stdin.flush()
            ready, _, _ = select.select([child.stdout], [], [], self._answer_within_s)
            line = child.stdout.readline() if ready else b""
        except OSError:  # the child died between two questions
            line = b""
        answer = json.loads(line) if line.strip() else {"error": "no answer"}
        if "error" in answer:
            self.close()  # the next question gets a fresh child
            return ConsumerGroupState.UNKNOWN, []
        members = [(str(m), int(n)) for m, n in answer["members"]]
        return ConsumerGroupState[answer["state"]], members

    def close(self) -> None:
        if self._child is not None:
            self._retire(self._child)
            self._child = None

    def _running(self) -> subprocess.Popen[bytes]:
        if self._child is not None and self._child.poll() is not None:
            self.close()
        if self._child is None:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "tests.group_probe", self._bootstrap],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=Path(__file__).resolve().parent.parent,  # where `tests` imports from
            )
        return self._child

    def _retire(self, child: subprocess.Popen[bytes]) -> None:
        child.kill()  # no effect on a child that already died: its status stays
        if child.wait(5) == -signal.SIGABRT:
            self.aborts += 1
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()


def _serve(bootstrap: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    for line in sys.stdin:
        group = line.strip()
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result()
        except KafkaException as e:  # e.g. NOT_COORDINATOR while the coordinator moves
            print(json.dumps({"error": str(e)}), flush=True)
            return
        members = [[m.member_id, len(m.assignment.topic_partitions)] for m in desc.members]
        print(json.dumps({"state": desc.state.name, "members": members}), flush=True)


if __name__ == "__main__":
    _serve(sys.argv[1])
