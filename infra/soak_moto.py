"""moto's server for the long fault soak (infra/soak.sh), with one change: a Query on the table's
own key reads only the partition it names.

moto answers every Query by sorting and filtering the whole table, so a soak's cost per event grows
with everything stored before it: 10,000 events made moto's calls three times slower by the end and
the run too long to finish. DynamoDB reads one partition; so does this. Results are the same items
in the same order (moto still filters and sorts them); index queries and every other operation are
moto's own. The tests run by ./scripts/test.sh use moto unchanged.

Usage: python infra/soak_moto.py -H 127.0.0.1 -p PORT   (the arguments of moto_server)
"""

import sys
import threading

from moto.dynamodb.models.table import Table
from moto.server import main

_moto_query = Table.query
# The partition is lent to moto's query through the table object, so one query at a time per
# server (moto's own state is not safe to share between threads anyway).
_lock = threading.Lock()


def _partition_query(self, hash_key, *args, **kwargs):
    index_name = args[6] if len(args) > 6 else kwargs.get("index_name")
    if index_name or hash_key is None or not self.range_key_attr:
        return _moto_query(self, hash_key, *args, **kwargs)
    with _lock:
        partition = self.items.get(hash_key, {})
        items = sorted(partition.values(), key=lambda item: item.range_key)
        self.all_items = lambda: items
        try:
            return _moto_query(self, hash_key, *args, **kwargs)
        finally:
            del self.all_items


Table.query = _partition_query

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
