#include "store/store.h"

#include <filesystem>
#include <utility>

#include "store/postgres_store.h"
#include "store/sqlite_store.h"

namespace allot {

void WriteBatch::Append(WriteBatch&& other) {
  ops_.insert(ops_.end(), std::make_move_iterator(other.ops_.begin()),
              std::make_move_iterator(other.ops_.end()));
  other.ops_.clear();
}

struct Store::PendingCommit {
  WriteBatch batch;
  bool done = false;
  Status status;
};

StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& location, int64_t fencing_epoch) {
  if (IsPostgres(location)) return OpenPostgresStore(location, fencing_epoch);
  if (fencing_epoch != 0) {
    return InvalidArgumentError("several servers on one store need PostgreSQL; '{}' is SQLite", location);
  }
  if (location.starts_with("sqlite:")) {
    std::string directory = location.substr(std::string_view("sqlite:").size());
    if (directory.empty()) return InvalidArgumentError("--store sqlite:DIR needs a directory, e.g. sqlite:allot-data");
    std::error_code error;
    std::filesystem::create_directories(directory, error);
    if (error) return InvalidArgumentError("cannot create the store directory '{}': {}", directory, error.message());
    return OpenSqliteStore((std::filesystem::path(directory) / "allot.db").string());
  }
  if (location.find("://") != std::string::npos) {
    return InvalidArgumentError("unknown store '{}': use sqlite:DIR or postgresql://HOST/DATABASE",
                                Describe(location));
  }
  return OpenSqliteStore(location);
}

bool Store::IsPostgres(const std::string& location) {
  return location.starts_with("postgresql://") || location.starts_with("postgres://");
}

std::string Store::Describe(const std::string& location) {
  if (location.find("://") == std::string::npos) return location;
  std::string shown = location;
  // postgresql://user:secret@host/db -> postgresql://user:***@host/db; the user info ends at the
  // last '@' before the query, so a password holding '/' or '@' is hidden whole.
  size_t authority = shown.find("://") + 3;
  size_t query = shown.find('?', authority);
  size_t at = shown.rfind('@', query == std::string::npos ? std::string::npos : query);
  if (at != std::string::npos && at >= authority) {
    size_t colon = shown.find(':', authority);
    if (colon != std::string::npos && colon < at) shown.replace(colon + 1, at - colon - 1, "***");
  }
  // ...?password=secret&... -> ...?password=***&...
  for (size_t key = shown.find("password="); key != std::string::npos; key = shown.find("password=", key + 1)) {
    size_t value = key + std::string_view("password=").size();
    size_t end = shown.find('&', value);
    shown.replace(value, (end == std::string::npos ? shown.size() : end) - value, "***");
  }
  return shown;
}

Store::Ticket Store::Enqueue(WriteBatch batch) {
  auto ticket = std::make_shared<PendingCommit>();
  ticket->batch = std::move(batch);
  std::lock_guard lock(write_mutex_);
  queued_.push_back(ticket);
  return ticket;
}

Status Store::Wait(const Ticket& ticket) {
  std::unique_lock lock(write_mutex_);
  while (!ticket->done) {
    if (committing_) {
      committed_.wait(lock);
      continue;
    }
    committing_ = true;
    std::vector<Ticket> group(queued_.begin(), queued_.end());
    queued_.clear();
    lock.unlock();
    std::vector<const WriteBatch*> batches;
    batches.reserve(group.size());
    for (const Ticket& member : group) batches.push_back(&member->batch);
    Status status = ApplyGroup(batches);
    lock.lock();
    committing_ = false;
    ++transactions_;
    batches_ += group.size();
    for (const Ticket& member : group) {
      member->status = status;
      member->done = true;
      member->batch = WriteBatch();
    }
    committed_.notify_all();
  }
  return ticket->status;
}

uint64_t Store::transactions() const {
  std::lock_guard lock(write_mutex_);
  return transactions_;
}

uint64_t Store::batches() const {
  std::lock_guard lock(write_mutex_);
  return batches_;
}

}  // namespace allot
