// Drives `qllm chat` through a real pseudo-terminal, as a person would: two turns, /clear,
// Ctrl-C during a reply, /bye; checks the screen and that a turn evaluates only its new tokens.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "model/model.h"
#include "model/synth.h"
#include "support.h"

namespace qllm {
namespace {

class Terminal {
public:
    explicit Terminal(const std::vector<std::string>& args) {
        std::vector<char*> argv;
        for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        pid_ = forkpty(&fd_, nullptr, nullptr, nullptr);
        if (pid_ == 0) {
            setenv("TERM", "dumb", 1);
            execv(argv[0], argv.data());
            _exit(127);
        }
    }
    ~Terminal() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        if (fd_ >= 0) close(fd_);
    }
    bool started() const { return pid_ > 0; }
    void type(const std::string& keys) { ASSERT_EQ(write(fd_, keys.data(), keys.size()), ssize_t(keys.size())); }

    // Reads until `needle` appears after `from` in the screen text, or the timeout passes.
    bool wait_for(const std::string& needle, size_t from, int seconds = 60) {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
        while (screen_.find(needle, from) == std::string::npos) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            pollfd p{fd_, POLLIN, 0};
            if (poll(&p, 1, 100) > 0) {
                char buf[4096];
                const ssize_t n = read(fd_, buf, sizeof(buf));
                if (n <= 0) return screen_.find(needle, from) != std::string::npos;
                screen_.append(buf, size_t(n));
            }
        }
        return true;
    }
    int exit_code() {
        int status = 0;
        waitpid(pid_, &status, 0);
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    const std::string& screen() const { return screen_; }

private:
    pid_t pid_ = -1;
    int fd_ = -1;
    bool exited_ = false;
    std::string screen_;
};

int64_t evaluated_after(const std::string& screen, size_t from) {
    std::smatch m;
    const std::string tail = screen.substr(from);
    if (!std::regex_search(tail, m, std::regex("evaluated (\\d+) new prompt tokens"))) return -1;
    return std::stoll(m[1]);
}

TEST(ChatTerminal, TwoTurnsClearInterruptBye) {
    const auto model_path = test::shared_dir() / "models" / "stories260K.gguf";
    QLLM_REQUIRE_SHARED(model_path);
    Terminal term({QLLM_BINARY, "chat", "-m", model_path.string(), "--chat-template", "chatml", "--temp", "0", "-n",
                   "16", "-c", "4096"});
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.wait_for(">>> ", 0)) << term.screen();

    // Turn 1, then turn 2: the second evaluates exactly the tokens of its own text.
    size_t mark = term.screen().size();
    term.type("Hello there\n");
    ASSERT_TRUE(term.wait_for(">>> ", mark)) << term.screen();
    EXPECT_GT(evaluated_after(term.screen(), mark), 0) << term.screen();
    mark = term.screen().size();
    term.type("Tell me a story\n");
    ASSERT_TRUE(term.wait_for(">>> ", mark)) << term.screen();
    auto model = Model::load(model_path.string(), Model::Mode::VocabOnly);
    const auto new_tokens = model->tokenizer().encode(
        "<|im_end|>\n<|im_start|>user\nTell me a story<|im_end|>\n<|im_start|>assistant\n", false, true);
    EXPECT_EQ(evaluated_after(term.screen(), mark), int64_t(new_tokens.size())) << term.screen().substr(mark);

    // /clear forgets the conversation.
    mark = term.screen().size();
    term.type("/clear\n");
    ASSERT_TRUE(term.wait_for("conversation cleared", mark)) << term.screen();

    // /help lists the commands.
    ASSERT_TRUE(term.wait_for(">>> ", mark));
    mark = term.screen().size();
    term.type("/help\n");
    ASSERT_TRUE(term.wait_for("/bye", mark)) << term.screen();
    ASSERT_TRUE(term.wait_for(">>> ", mark));

    mark = term.screen().size();
    term.type("/bye\n");
    EXPECT_EQ(term.exit_code(), 0) << term.screen();
}

// A synthetic model whose vocabulary has ChatML's control tokens and whose file carries the
// ChatML template: the model's own template is used, and a turn evaluates only its new tokens.
TEST(ChatTerminal, SyntheticChatmlModelReusesTheCache) {
    test::TempDir dir;
    const std::string path = (dir / "chat.gguf").string();
    SynthOptions so;
    so.type = TensorType::F32;
    so.layers = 2;
    so.chat = true;
    write_synth_model(*find_synth_shape("tiny"), so, path);

    Terminal term({QLLM_BINARY, "chat", "-m", path, "--temp", "0", "-n", "8", "--ignore-eos"});
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.wait_for(">>> ", 0)) << term.screen();
    size_t mark = term.screen().size();
    term.type("first question\n");
    ASSERT_TRUE(term.wait_for(">>> ", mark)) << term.screen();
    auto model = Model::load(path, Model::Mode::VocabOnly);
    const auto first = model->tokenizer().encode(
        "<|im_start|>user\nfirst question<|im_end|>\n<|im_start|>assistant\n", model->vocab().add_bos, true);
    EXPECT_EQ(evaluated_after(term.screen(), mark), int64_t(first.size())) << term.screen().substr(mark);

    mark = term.screen().size();
    term.type("second question\n");
    ASSERT_TRUE(term.wait_for(">>> ", mark)) << term.screen();
    const auto added = model->tokenizer().encode(
        "<|im_end|>\n<|im_start|>user\nsecond question<|im_end|>\n<|im_start|>assistant\n", false, true);
    EXPECT_EQ(evaluated_after(term.screen(), mark), int64_t(added.size())) << term.screen().substr(mark);
    // The markers are single control tokens of this vocabulary.
    const TokenId im_start = model->vocab().find("<|im_start|>");
    ASSERT_GE(im_start, 0);
    EXPECT_NE(std::find(added.begin(), added.end(), im_start), added.end());

    term.type("/bye\n");
    EXPECT_EQ(term.exit_code(), 0) << term.screen();
}

TEST(ChatTerminal, CtrlCStopsAReply) {
    const auto model_path = test::shared_dir() / "models" / "stories260K.gguf";
    QLLM_REQUIRE_SHARED(model_path);
    // A reply that would run to the end of a 4096-token context unless interrupted.
    Terminal term({QLLM_BINARY, "chat", "-m", model_path.string(), "--chat-template", "chatml", "--temp", "0",
                   "--ignore-eos", "-c", "4096"});
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.wait_for(">>> ", 0)) << term.screen();
    size_t mark = term.screen().size();
    term.type("Once upon a time\n");
    ASSERT_TRUE(term.wait_for(" ", mark + 20)) << term.screen();  // the reply has started
    term.type("\x03");
    ASSERT_TRUE(term.wait_for("reply stopped", mark)) << term.screen();
    ASSERT_TRUE(term.wait_for(">>> ", mark)) << term.screen();
    mark = term.screen().size();
    term.type("\x04");  // Ctrl-D leaves
    EXPECT_EQ(term.exit_code(), 0) << term.screen();
}

TEST(ChatTerminal, ModelWithoutTemplateExplains) {
    const auto model_path = test::shared_dir() / "models" / "stories260K.gguf";
    QLLM_REQUIRE_SHARED(model_path);
    Terminal term({QLLM_BINARY, "chat", "-m", model_path.string()});
    ASSERT_TRUE(term.started());
    ASSERT_TRUE(term.wait_for("--chat-template", 0)) << term.screen();
    EXPECT_EQ(term.exit_code(), 1);
    EXPECT_NE(term.screen().find("no chat template"), std::string::npos) << term.screen();
}

}  // namespace
}  // namespace qllm
