#include "server/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <charconv>
#include <stdexcept>

namespace allot {
namespace {

std::string Hex(const unsigned char* bytes, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  text.reserve(size * 2);
  for (size_t i = 0; i < size; ++i) {
    text += kDigits[bytes[i] >> 4];
    text += kDigits[bytes[i] & 0xf];
  }
  return text;
}

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kOperator:
      return "operator";
    case Role::kTenant:
      return "tenant";
    case Role::kAgent:
      return "agent";
    case Role::kBootstrap:
      return "bootstrap";
    case Role::kJob:
      return "job";
  }
  return "unknown";
}

StatusOr<Role> ParseRole(std::string_view name) {
  for (Role role : {Role::kOperator, Role::kTenant, Role::kAgent, Role::kBootstrap}) {
    if (RoleName(role) == name) return role;
  }
  return InvalidArgumentError("unknown role '{}'; use operator, tenant, agent or bootstrap", name);
}

std::string NewToken() {
  std::array<unsigned char, 32> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    // Without randomness no token is safe to hand out; this is not a condition to limp through.
    throw std::runtime_error("RAND_bytes failed: the system has no entropy source");
  }
  return "allot_" + Hex(bytes.data(), bytes.size());
}

std::string HashToken(std::string_view token) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  EVP_Digest(token.data(), token.size(), digest.data(), &size, EVP_sha256(), nullptr);
  return Hex(digest.data(), size);
}

std::string_view BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size()) return {};
  // The scheme is case-insensitive (RFC 9110); the token is not.
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kScheme[i]))) {
      return {};
    }
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return token;
}

}  // namespace allot

namespace allot {

std::string NewSecretKey() { return NewToken().substr(6); }

static std::string JobSignature(std::string_view key, uint64_t job, uint64_t epoch) {
  const std::string message = fmt::format("job:{}:{}", job, epoch);
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), digest.data(), &size);
  return Hex(digest.data(), size);
}

std::string JobCredential(std::string_view key, uint64_t job, uint64_t epoch) {
  return fmt::format("{}{}_{}_{}", kJobCredentialPrefix, job, epoch, JobSignature(key, job, epoch));
}

std::optional<std::pair<uint64_t, uint64_t>> CheckJobCredential(std::string_view key, std::string_view token) {
  if (!token.starts_with(kJobCredentialPrefix)) return std::nullopt;
  token.remove_prefix(kJobCredentialPrefix.size());
  uint64_t job = 0;
  uint64_t epoch = 0;
  auto [after_job, job_error] = std::from_chars(token.data(), token.data() + token.size(), job);
  if (job_error != std::errc() || after_job == token.data() + token.size() || *after_job != '_') return std::nullopt;
  auto [after_epoch, epoch_error] = std::from_chars(after_job + 1, token.data() + token.size(), epoch);
  if (epoch_error != std::errc() || after_epoch == token.data() + token.size() || *after_epoch != '_') return std::nullopt;
  std::string_view signature(after_epoch + 1, static_cast<size_t>(token.data() + token.size() - after_epoch - 1));
  std::string expected = JobSignature(key, job, epoch);
  if (signature.size() != expected.size() || CRYPTO_memcmp(signature.data(), expected.data(), expected.size()) != 0) {
    return std::nullopt;
  }
  return std::make_pair(job, epoch);
}

}  // namespace allot
