"""A local Ray cluster for the tests: ``python ray_head.py TEMP_DIR`` prints the GCS address, then keeps the
cluster up until its stdin closes (``ray.shutdown`` then stops every process the cluster started)."""

import sys

import ray

context = ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=80 * 2**20,
                   _temp_dir=sys.argv[1])
print(context.address_info["gcs_address"], flush=True)
sys.stdin.read()
ray.shutdown()
