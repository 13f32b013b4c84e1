#include "cli/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include "cli/fake_server.h"

namespace allot {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

namespace fs = std::filesystem;

// A fresh folder, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "allot_cli_test_XXXXXX").string();
    path_ = mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

  // Writes `text` to `relative` under the folder, creating folders as needed; returns the path.
  std::string Write(const std::string& relative, const std::string& text) const {
    fs::path file = path_ / relative;
    fs::create_directories(file.parent_path());
    std::ofstream(file) << text;
    return file.string();
  }

 private:
  fs::path path_;
};

// Gives the settings' environment variables known values for one test and restores the
// process's own afterwards, so tests neither see nor change the developer's configuration.
class SettingsTest : public ::testing::Test {
 protected:
  SettingsTest() {
    for (const char* name : {"HOME", "XDG_CONFIG_HOME", "ALLOT_SERVER", "ALLOT_TOKEN"}) {
      const char* value = std::getenv(name);
      saved_[name] = value == nullptr ? std::nullopt : std::optional<std::string>(value);
      unsetenv(name);
    }
    setenv("HOME", home_.path().c_str(), 1);
  }
  ~SettingsTest() override {
    for (const auto& [name, value] : saved_) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }

  // Writes ~/.config/allot/config.yaml.
  std::string WriteConfig(const std::string& text) {
    return home_.Write(".config/allot/config.yaml", text);
  }

  TempDir home_;
  std::map<std::string, std::optional<std::string>> saved_;
};

TEST_F(SettingsTest, FlagsWinOverTheEnvironmentAndTheFile) {
  WriteConfig("server: http://file:1\ntoken: file-token\n");
  setenv("ALLOT_SERVER", "http://env:2", 1);
  setenv("ALLOT_TOKEN", "env-token", 1);
  StatusOr<ClientSettings> settings =
      ResolveClientSettings({.server = "http://flag:3", .token = "flag-token"});
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->server, "http://flag:3");
  EXPECT_EQ(settings->token, "flag-token");
}

TEST_F(SettingsTest, TheEnvironmentWinsOverTheFile) {
  WriteConfig("server: http://file:1\ntoken: file-token\n");
  setenv("ALLOT_SERVER", "http://env:2", 1);
  setenv("ALLOT_TOKEN", "env-token", 1);
  StatusOr<ClientSettings> settings = ResolveClientSettings({});
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->server, "http://env:2");
  EXPECT_EQ(settings->token, "env-token");
}

TEST_F(SettingsTest, EachSettingComesFromItsOwnFirstSource) {
  WriteConfig("server: http://file:1\ntoken: file-token\n");
  setenv("ALLOT_SERVER", "http://env:2", 1);
  setenv("ALLOT_TOKEN", "", 1);  // empty counts as unset
  StatusOr<ClientSettings> settings = ResolveClientSettings({});
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->server, "http://env:2");
  EXPECT_EQ(settings->token, "file-token");
}

TEST_F(SettingsTest, TheServerDefaultsToLocalhost) {
  StatusOr<ClientSettings> settings = ResolveClientSettings({.token = "t"});
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->server, "http://127.0.0.1:8080");
}

TEST_F(SettingsTest, XdgConfigHomeComesBeforeHome) {
  WriteConfig("token: home-token\n");
  TempDir xdg;
  xdg.Write("allot/config.yaml", "token: xdg-token\n");
  setenv("XDG_CONFIG_HOME", xdg.path().c_str(), 1);
  EXPECT_EQ(ClientConfigPath(), (xdg.path() / "allot/config.yaml").string());
  StatusOr<ClientSettings> settings = ResolveClientSettings({});
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->token, "xdg-token");

  // The XDG spec says a relative XDG_CONFIG_HOME is to be ignored.
  setenv("XDG_CONFIG_HOME", "relative/config", 1);
  settings = ResolveClientSettings({});
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->token, "home-token");
}

TEST_F(SettingsTest, ATokenIsReadFromAnAtFileTrimmed) {
  std::string file = home_.Write("operator.token", "  allot_0123abcd\n\n");
  StatusOr<ClientSettings> settings = ResolveClientSettings({.token = "@" + file});
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->token, "allot_0123abcd");

  setenv("ALLOT_TOKEN", ("@" + file).c_str(), 1);
  settings = ResolveClientSettings({});
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->token, "allot_0123abcd");
}

TEST_F(SettingsTest, ARelativeAtFileInTheConfigIsBesideTheConfig) {
  home_.Write(".config/allot/secret.token", "from-beside\n");
  WriteConfig("token: '@secret.token'\n");
  StatusOr<ClientSettings> settings = ResolveClientSettings({});
  ASSERT_TRUE(settings.ok()) << settings.status().ToString();
  EXPECT_EQ(settings->token, "from-beside");
}

TEST_F(SettingsTest, AnUnreadableTokenFileNamesTheFileAndTheFlag) {
  StatusOr<ClientSettings> settings = ResolveClientSettings({.token = "@/nonexistent/op.token"});
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(settings.status().message(), HasSubstr("/nonexistent/op.token"));
  EXPECT_THAT(settings.status().message(), HasSubstr("--token"));
}

TEST_F(SettingsTest, AnEmptyTokenFileIsAnError) {
  std::string file = home_.Write("empty.token", " \n");
  StatusOr<ClientSettings> settings = ResolveClientSettings({.token = "@" + file});
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(settings.status().message(), HasSubstr("is empty"));
}

TEST_F(SettingsTest, ATokenWithSpacesIsRejected) {
  setenv("ALLOT_TOKEN", "two words", 1);
  StatusOr<ClientSettings> settings = ResolveClientSettings({});
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(settings.status().message(), HasSubstr("ALLOT_TOKEN"));
}

TEST_F(SettingsTest, AnUnknownConfigKeyNamesTheFileAndLine) {
  std::string path = WriteConfig("server: http://h:1\ntokn: abc\n");
  StatusOr<ClientSettings> settings = ResolveClientSettings({});
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(settings.status().message(), StartsWith(path + ":2: unknown key 'tokn'"));
}

TEST_F(SettingsTest, MalformedYamlNamesTheFile) {
  std::string path = WriteConfig("server: [unclosed\n");
  StatusOr<ClientSettings> settings = ResolveClientSettings({.token = "t"});
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(settings.status().message(), StartsWith(path + ":"));
}

TEST_F(SettingsTest, TheFileIsNotReadWhenFlagsGiveEverything) {
  WriteConfig("this is: [not valid\n");
  StatusOr<ClientSettings> settings = ResolveClientSettings({.server = "http://h:1", .token = "t"});
  EXPECT_TRUE(settings.ok()) << settings.status().ToString();
}

TEST_F(SettingsTest, AMissingTokenSaysWhereToPutOne) {
  StatusOr<ClientSettings> settings = ResolveClientSettings({.server = "http://h:1"});
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(settings.status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(settings.status().message(),
            "no token: pass --token, set ALLOT_TOKEN, or put token: in "
            "~/.config/allot/config.yaml");
}

TEST_F(SettingsTest, ABadServerUrlNamesItsSource) {
  setenv("ALLOT_SERVER", "localhost:8080", 1);
  StatusOr<ClientSettings> settings = ResolveClientSettings({.token = "t"});
  ASSERT_FALSE(settings.ok());
  EXPECT_EQ(settings.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(settings.status().message(), HasSubstr("ALLOT_SERVER"));
  EXPECT_THAT(settings.status().message(), HasSubstr("http://HOST:PORT"));
}

TEST(ApiClientTest, RejectsAServerThatIsNotAnHttpUrl) {
  for (const char* url : {"127.0.0.1:8080", "ftp://h", "http://", "http://h:1/x?y=1"}) {
    StatusOr<ApiClient> client = ApiClient::Create({.server = url, .token = "t"});
    ASSERT_FALSE(client.ok()) << url;
    EXPECT_EQ(client.status().code(), StatusCode::kInvalidArgument) << url;
  }
}

TEST(ApiClientTest, SendsTheBearerTokenAndTheQuery) {
  FakeServer server;
  server.Reply("GET", "/v1/jobs", 200, R"({"jobs": []})");
  StatusOr<ApiClient> client = ApiClient::Create({.server = server.url(), .token = "allot_abc"});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  StatusOr<nlohmann::json> reply =
      client->Get("/v1/jobs", {{"state", "pending,running"}, {"user", "kim lee"}});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(*reply, nlohmann::json::parse(R"({"jobs": []})"));
  ASSERT_EQ(server.requests().size(), 1u);
  const FakeServer::Request request = server.requests().at(0);
  EXPECT_EQ(request.method, "GET");
  EXPECT_EQ(request.path, "/v1/jobs");
  EXPECT_EQ(request.authorization, "Bearer allot_abc");
  EXPECT_EQ(request.query.find("state")->second, "pending,running");
  EXPECT_EQ(request.query.find("user")->second, "kim lee");
}

TEST(ApiClientTest, PostsJsonAndPrefixesAServerPath) {
  FakeServer server;
  server.Reply("POST", "/allot/v1/tokens", 201, R"({"id": 4})");
  StatusOr<ApiClient> client =
      ApiClient::Create({.server = server.url() + "/allot/", .token = "t"});
  ASSERT_TRUE(client.ok()) << client.status().ToString();
  StatusOr<nlohmann::json> reply = client->Post("/v1/tokens", {{"role", "agent"}});
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ((*reply)["id"], 4);
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_EQ(server.requests()[0].content_type, "application/json");
  EXPECT_EQ(nlohmann::json::parse(server.requests()[0].body), nlohmann::json({{"role", "agent"}}));
}

TEST(ApiClientTest, AnEmptySuccessfulReplyReadsAsAnEmptyObject) {
  FakeServer server;
  server.Reply("DELETE", "/v1/tokens/3", 200, "");
  StatusOr<ApiClient> client = ApiClient::Create({.server = server.url(), .token = "t"});
  ASSERT_TRUE(client.ok());
  StatusOr<nlohmann::json> reply = client->Delete("/v1/tokens/3");
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(*reply, nlohmann::json::object());
  EXPECT_EQ(server.requests().at(0).method, "DELETE");
}

TEST(ApiClientTest, ErrorRepliesKeepTheServersMessageAndMapTheCode) {
  const std::pair<int, StatusCode> cases[] = {
      {400, StatusCode::kInvalidArgument},    {401, StatusCode::kUnauthenticated},
      {403, StatusCode::kPermissionDenied},   {404, StatusCode::kNotFound},
      {409, StatusCode::kFailedPrecondition}, {413, StatusCode::kInvalidArgument},
      {500, StatusCode::kInternal},           {503, StatusCode::kUnavailable},
  };
  FakeServer server;
  StatusOr<ApiClient> client = ApiClient::Create({.server = server.url(), .token = "t"});
  ASSERT_TRUE(client.ok());
  for (const auto& [http_status, code] : cases) {
    std::string message = "message for " + std::to_string(http_status);
    server.Reply("GET", "/v1/scheduler", http_status,
                 nlohmann::json({{"code", "x"}, {"message", message}}).dump());
    StatusOr<nlohmann::json> reply = client->Get("/v1/scheduler");
    ASSERT_FALSE(reply.ok()) << http_status;
    EXPECT_EQ(reply.status().code(), code) << http_status;
    EXPECT_EQ(reply.status().message(), message);
  }
}

TEST(ApiClientTest, AnErrorWithoutJsonNamesTheHttpStatusAndRequest) {
  FakeServer server;
  server.Reply("GET", "/v1/pools", 502, "<html>Bad Gateway</html>");
  StatusOr<ApiClient> client = ApiClient::Create({.server = server.url(), .token = "t"});
  ASSERT_TRUE(client.ok());
  StatusOr<nlohmann::json> reply = client->Get("/v1/pools");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(reply.status().message(), HasSubstr("HTTP 502 to GET /v1/pools"));
}

TEST(ApiClientTest, ASuccessThatIsNotJsonIsAnInternalError) {
  FakeServer server;
  server.Reply("GET", "/v1/pools", 200, "<html>hello</html>");
  StatusOr<ApiClient> client = ApiClient::Create({.server = server.url(), .token = "t"});
  ASSERT_TRUE(client.ok());
  StatusOr<nlohmann::json> reply = client->Get("/v1/pools");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kInternal);
  EXPECT_THAT(reply.status().message(), HasSubstr("not JSON"));
}

// A port nothing listens on: bound once to learn a free number, then closed.
int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  EXPECT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
  EXPECT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length), 0);
  close(fd);
  return ntohs(address.sin_port);
}

TEST(ApiClientTest, AnUnreachableServerIsUnavailableWithAHint) {
  std::string url = "http://127.0.0.1:" + std::to_string(UnusedPort());
  StatusOr<ApiClient> client = ApiClient::Create({.server = url, .token = "t"});
  ASSERT_TRUE(client.ok());
  StatusOr<nlohmann::json> reply = client->Get("/v1/whoami");
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kUnavailable);
  EXPECT_THAT(reply.status().message(), StartsWith("cannot reach the allot server at " + url));
  EXPECT_THAT(reply.status().message(), HasSubstr("set --server or ALLOT_SERVER"));
}

// Servers sharing a store: a standby names the leader, and the client goes there and stays.
TEST(ApiClientTest, SeveralServersFindTheLeaderAndStayWithIt) {
  FakeServer standby;
  FakeServer leader;
  standby.StandBy(leader.url());
  leader.Reply("GET", "/v1/whoami", 200, R"({"user": "kim"})");
  leader.Reply("POST", "/v1/jobs", 200, R"({"id": 7})");
  std::string dead = "http://127.0.0.1:" + std::to_string(UnusedPort());
  StatusOr<ApiClient> client = ApiClient::Create({.server = dead + ", " + standby.url() + "," + leader.url(), .token = "t"});
  ASSERT_TRUE(client.ok()) << client.status().message();
  StatusOr<nlohmann::json> reply = client->Get("/v1/whoami");
  ASSERT_TRUE(reply.ok()) << reply.status().message();
  EXPECT_EQ((*reply)["user"], "kim");
  EXPECT_EQ(client->server(), leader.url());
  EXPECT_EQ(standby.requests().size(), 1u);
  // A submit goes to the leader it found, once.
  ASSERT_TRUE(client->PostOnce("/v1/jobs", {{"name", "x"}}).ok());
  EXPECT_EQ(standby.requests().size(), 1u);
  EXPECT_EQ(leader.requests().size(), 2u);
}

TEST_F(SettingsTest, EveryServerOfAListIsChecked) {
  StatusOr<ClientSettings> settings = ResolveClientSettings({.server = "http://a:1,ftp://b", .token = "t"});
  ASSERT_FALSE(settings.ok());
  EXPECT_THAT(settings.status().message(), HasSubstr("'ftp://b' is not a server URL"));
  EXPECT_FALSE(ResolveClientSettings({.server = " , ", .token = "t"}).ok());
  EXPECT_TRUE(ResolveClientSettings({.server = "http://a:1, https://b/allot", .token = "t"}).ok());
}

}  // namespace
}  // namespace allot
