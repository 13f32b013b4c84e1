// The SQLite engine of the Store: one database file in WAL mode, synchronous=FULL, a writer and
// a reader connection. The embedded default (--dev, small sites). Use Store::Open.
#pragma once

#include <memory>
#include <string>

#include "store/store.h"

namespace allot {

// Opens (creating if needed) the database file at `path` and migrates its schema.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace allot
