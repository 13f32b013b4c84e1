// The PostgreSQL engine of the Store, through libpq: production state that PostgreSQL itself
// replicates (streaming replication, Patroni), which several allot servers can share. Use
// Store::Open("postgresql://...").
//
// A group commit is one transaction sent as one pipeline (libpq pipeline mode): every write of
// every batch in the group, with a Sync after each 1,000 writes and at the end, so a thousand
// submits cost one round trip and one WAL flush. Statements are prepared once per connection.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace allot {

// Connects to the database named by a libpq URI and migrates its schema. Two servers starting
// at once migrate one after the other (an advisory lock), never both. With a fencing epoch
// (Leadership::epoch()), every write transaction first checks that the epoch is still current.
StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& uri, int64_t fencing_epoch = 0);

}  // namespace allot
