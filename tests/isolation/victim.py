"""The other project's job: keeps state in its checkpoint folder and a secret in its
environment, and runs until the test lets it finish (a file ``done`` in its checkpoint folder).
Standard library only: run by the system's python3."""

import os
import time

folder = os.environ["FAIRPOOL_CHECKPOINT_DIR"]
with open(os.path.join(folder, "state"), "w") as f:
    f.write("victim state\n")
print("victim running; secret", "set" if os.environ.get("B_TOKEN") else "missing", flush=True)
deadline = time.time() + 300
while not os.path.exists(os.path.join(folder, "done")) and time.time() < deadline:
    time.sleep(0.1)
with open(os.path.join(folder, "state")) as f:
    print("victim state at the end:", f.read().strip(), flush=True)
