// Chat templates: built-in families and the models' Jinja templates against the llama.cpp
// renderings in ../shared/golden/chat/templates.json, and the Jinja interpreter on small
// hand-written templates.
#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "chat/jinja.h"
#include "chat/template.h"
#include "gguf/gguf.h"
#include "qllm/error.h"
#include "support.h"

namespace {

using qllm::chat::ChatMessage;
using qllm::chat::ChatTemplate;
using qllm::chat::RenderParams;

nlohmann::json load_golden() {
    auto path = qllm::test::shared_dir() / "golden/chat/templates.json";
    return nlohmann::json::parse(qllm::test::read_text(path));
}

std::vector<ChatMessage> golden_conversation(const nlohmann::json& golden) {
    std::vector<ChatMessage> messages;
    for (const auto& m : golden["conversation"]) messages.push_back({m["role"], m["content"]});
    return messages;
}

using Json = nlohmann::ordered_json;  // keeps key order, as templates see it

qllm::jinja::Value to_value(const Json& j) {
    using qllm::jinja::Value;
    if (j.is_null()) return Value::none();
    if (j.is_boolean()) return Value(j.get<bool>());
    if (j.is_number_integer()) return Value(j.get<int64_t>());
    if (j.is_number_float()) return Value(j.get<double>());
    if (j.is_string()) return Value(j.get<std::string>());
    if (j.is_array()) {
        qllm::jinja::ValueList list;
        for (const auto& item : j) list.push_back(to_value(item));
        return Value(std::move(list));
    }
    qllm::jinja::ValueDict dict;
    for (const auto& [key, item] : j.items()) dict.set(key, to_value(item));
    return Value(std::move(dict));
}

// Renders Jinja `source` with `vars` (a JSON object) as its variables.
std::string render(const std::string& source, const Json& vars = Json::object(),
                   const qllm::jinja::RenderOptions& options = {}) {
    return qllm::jinja::Template(source).render(to_value(vars).as_dict(), options);
}

// The message of the qllm::Error that rendering throws ("" if none).
std::string render_error(const std::string& source, const Json& vars = Json::object()) {
    try {
        render(source, vars);
    } catch (const qllm::Error& e) {
        return e.what();
    }
    return "";
}

// ---- golden renderings ----------------------------------------------------------------------

TEST(ChatTemplateGolden, BuiltinsMatchReference) {
    auto path = qllm::test::shared_dir() / "golden/chat/templates.json";
    QLLM_REQUIRE_SHARED(path);
    auto golden = load_golden();
    auto messages = golden_conversation(golden);
    bool add_generation_prompt = golden["add_generation_prompt"];
    int matched = 0, total = 0;
    for (const auto& [name, expected] : golden["builtin"].items()) {
        ++total;
        ASSERT_TRUE(qllm::chat::is_builtin_template(name)) << name;
        std::string got = qllm::chat::render_builtin(name, messages, add_generation_prompt);
        EXPECT_EQ(got, expected.get<std::string>()) << "template " << name;
        matched += got == expected.get<std::string>();
        // A built-in name given where a template is expected selects that family.
        EXPECT_EQ(qllm::chat::render_chat(name, messages), got) << name;
        EXPECT_EQ(qllm::chat::detect_template_family(name), name);
        EXPECT_FALSE(qllm::chat::end_of_turn_markers(name).empty()) << name;
    }
    EXPECT_EQ(total, 41);
    std::printf("built-in chat templates matching the reference: %d/%d\n", matched, total);
}

struct GgufTemplate {
    std::string source, bos, eos;
};

GgufTemplate read_gguf_template(const std::string& path) {
    qllm::gguf::File file(path);
    GgufTemplate t;
    t.source = file.get_string("tokenizer.chat_template");
    auto tokens = file.get_string_array("tokenizer.ggml.tokens");
    if (file.has("tokenizer.ggml.bos_token_id")) t.bos = tokens.at(file.get_count("tokenizer.ggml.bos_token_id"));
    if (file.has("tokenizer.ggml.eos_token_id")) t.eos = tokens.at(file.get_count("tokenizer.ggml.eos_token_id"));
    return t;
}

TEST(ChatTemplateGolden, ModelTemplatesMatchReference) {
    auto json_path = qllm::test::shared_dir() / "golden/chat/templates.json";
    QLLM_REQUIRE_SHARED(json_path);
    auto golden = load_golden();
    auto messages = golden_conversation(golden);
    const std::map<std::string, std::string> expected_family = {
        {"golden/tokenizer/llama3-vocab.gguf", "llama3"},
        {"golden/tokenizer/qwen3-vocab.gguf", "chatml"},
    };
    ASSERT_EQ(golden["from_gguf"].size(), 2u);
    for (const auto& [relative, expected] : golden["from_gguf"].items()) {
        auto path = qllm::test::shared_dir() / relative;
        QLLM_REQUIRE_SHARED(path);
        GgufTemplate model = read_gguf_template(path.string());
        ChatTemplate tmpl(model.source);
        EXPECT_TRUE(tmpl.is_jinja());
        EXPECT_TRUE(tmpl.jinja_parsed()) << relative;
        EXPECT_EQ(tmpl.family(), expected_family.at(relative));
        RenderParams params;
        params.add_generation_prompt = golden["add_generation_prompt"];
        params.bos_token = model.bos;
        params.eos_token = model.eos;
        EXPECT_EQ(tmpl.render(messages, params), expected.get<std::string>()) << relative;
        // Its built-in family renders this conversation the same way.
        EXPECT_EQ(qllm::chat::render_builtin(tmpl.family(), messages, true), expected.get<std::string>()) << relative;
    }
}

TEST(ChatTemplateGolden, LlamaTemplateKeepsBosWhenAsked) {
    auto path = qllm::test::shared_dir() / "golden/tokenizer/llama3-vocab.gguf";
    QLLM_REQUIRE_SHARED(path);
    GgufTemplate model = read_gguf_template(path.string());
    ASSERT_EQ(model.bos, "<|begin_of_text|>");
    RenderParams params;
    params.bos_token = model.bos;
    params.strip_leading_bos = false;
    std::vector<ChatMessage> messages = {{"user", " hi "}};
    EXPECT_EQ(ChatTemplate(model.source).render(messages, params),
              "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

// ---- families, detection, fallback ----------------------------------------------------------

TEST(ChatTemplate, RequiredBuiltinsExist) {
    for (const char* name : {"llama2", "llama3", "chatml", "gemma", "phi3", "mistral-v1", "mistral-v3", "mistral-v7",
                             "zephyr", "deepseek3"}) {
        EXPECT_TRUE(qllm::chat::is_builtin_template(name)) << name;
    }
}

TEST(ChatTemplate, DetectsFamiliesByMarkers) {
    using qllm::chat::detect_template_family;
    EXPECT_EQ(detect_template_family("{{ '<|im_start|>' + m.role }}"), "chatml");
    EXPECT_EQ(detect_template_family("{{ '<|im_start|>' + m.role + '<|im_sep|>' }}"), "phi4");
    EXPECT_EQ(detect_template_family("{{ '<|start_header_id|>' + r + '<|end_header_id|>' }}"), "llama3");
    EXPECT_EQ(detect_template_family("{{ '<start_of_turn>' + role }}"), "gemma");
    EXPECT_EQ(detect_template_family("{{ '[INST] ' + content + ' [/INST]' }}"), "llama2");
    EXPECT_EQ(detect_template_family("{{ '[INST] <<SYS>>' }}"), "llama2-sys");
    EXPECT_EQ(detect_template_family("{{ '[SYSTEM_PROMPT]' }}{{ '[INST]' }}"), "mistral-v7");
    EXPECT_EQ(detect_template_family("{{ '<|user|>' }}{{ '<|assistant|>' }}{{ '<|end|>' }}"), "phi3");
    EXPECT_EQ(detect_template_family("{{ '<|user|>' }}{{ '<|endoftext|>' }}"), "zephyr");
    EXPECT_EQ(detect_template_family("{{ '<｜User｜>' }}{{ '<｜Assistant｜>' }}{{ '<｜end▁of▁sentence｜>' }}"), "deepseek3");
    EXPECT_EQ(detect_template_family("{{ '<|header_start|>' }}{{ '<|header_end|>' }}"), "llama4");
    EXPECT_EQ(detect_template_family("{{ messages }}"), "");
}

TEST(ChatTemplate, StopMarkers) {
    auto has = [](const std::string& family, const std::string& marker) {
        auto markers = qllm::chat::end_of_turn_markers(family);
        return std::find(markers.begin(), markers.end(), marker) != markers.end();
    };
    EXPECT_TRUE(has("llama3", "<|eot_id|>"));
    EXPECT_TRUE(has("chatml", "<|im_end|>"));
    EXPECT_TRUE(has("gemma", "<end_of_turn>"));
    EXPECT_TRUE(has("phi3", "<|end|>"));
    EXPECT_TRUE(has("mistral-v7", "</s>"));
    EXPECT_TRUE(qllm::chat::end_of_turn_markers("no-such-family").empty());
    EXPECT_TRUE(ChatTemplate("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}").stop_markers().size() > 0);
}

TEST(ChatTemplate, UnknownNameIsAnError) {
    try {
        ChatTemplate t("no-such-template");
        FAIL() << "expected an error";
    } catch (const qllm::Error& e) {
        EXPECT_NE(std::string(e.what()).find("chatml"), std::string::npos) << e.what();
    }
}

TEST(ChatTemplate, UnparsableUnknownTemplateAdvisesOption) {
    try {
        ChatTemplate t("{% frobnicate %}{{ messages }}");
        FAIL() << "expected an error";
    } catch (const qllm::Error& e) {
        EXPECT_NE(std::string(e.what()).find("--chat-template"), std::string::npos) << e.what();
    }
}

TEST(ChatTemplate, UnparsableKnownTemplateFallsBackToFamily) {
    ChatTemplate t("{% frobnicate %}<|im_start|>{{ messages }}");
    EXPECT_FALSE(t.jinja_parsed());
    EXPECT_EQ(t.family(), "chatml");
    std::vector<ChatMessage> messages = {{"user", "Hi"}};
    EXPECT_EQ(t.render(messages), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, RenderErrorFallsBackOrAdvises) {
    std::vector<ChatMessage> messages = {{"system", "S"}, {"user", "Hi"}};
    // Gemma 2's template refuses a system role; the built-in gemma format merges it instead.
    ChatTemplate gemma(
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        "{% for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n{% endfor %}");
    EXPECT_EQ(gemma.render(messages), "<start_of_turn>user\nS\n\nHi<end_of_turn>\n<start_of_turn>model\n");
    ChatTemplate unknown("{{ raise_exception('nope') }}");
    try {
        unknown.render(messages);
        FAIL() << "expected an error";
    } catch (const qllm::Error& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("nope"), std::string::npos) << what;
        EXPECT_NE(what.find("--chat-template"), std::string::npos) << what;
    }
}

TEST(ChatTemplate, GenerationPromptToggle) {
    std::vector<ChatMessage> messages = {{"user", "Hi"}};
    RenderParams params;
    params.add_generation_prompt = false;
    EXPECT_EQ(qllm::chat::render_chat("chatml", messages, params), "<|im_start|>user\nHi<|im_end|>\n");
    const char* jinja = "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}";
    EXPECT_EQ(qllm::chat::render_chat(jinja, messages, params), "[user]Hi");
    params.add_generation_prompt = true;
    EXPECT_EQ(qllm::chat::render_chat(jinja, messages, params), "[user]Hi[assistant]");
}

// ---- the Jinja interpreter on small templates ----------------------------------------------

const Json kVars = {
    {"xs", {1, 2, 3}},
    {"d", {{"a", 1}, {"b", "two"}}},
    {"ms", {{{"role", "user"}, {"content", "hi there"}}, {{"role", "assistant"}, {"content", "yo"}}}},
};

TEST(JinjaBasics, TextOutputAndComments) {
    EXPECT_EQ(render("plain text"), "plain text");
    EXPECT_EQ(render("a{# a comment #}b{{ 'c' }}"), "abc");
    EXPECT_EQ(render("{{ 1 }}{{ 'x' }}{{ none }}{{ true }}{{ undefined_name }}."), "1xNoneTrue.");
    EXPECT_EQ(render("{{ \"say \\\"hi\\\"\\n\" }}"), "say \"hi\"\n");
    EXPECT_EQ(render("{{ 'a' 'b' }}"), "ab");  // adjacent literals concatenate
    EXPECT_EQ(render("{% raw %}{{ not rendered }}{% endraw %}"), "{{ not rendered }}");
    EXPECT_EQ(render("one\n"), "one");  // a single trailing newline is dropped
}

TEST(JinjaBasics, PythonPrintingOfValues) {
    EXPECT_EQ(render("{{ [1, 'a', none, true, 1.5] }}"), "[1, 'a', None, True, 1.5]");
    EXPECT_EQ(render("{{ {'a': 1, 'b': [2]} }}"), "{'a': 1, 'b': [2]}");
    EXPECT_EQ(render("{{ [\"it's\"] }}"), "[\"it's\"]");
    EXPECT_EQ(render("{{ 7 / 2 }} {{ 10 / 5 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1e-5 }} {{ 3.0 }}"),
              "3.5 2.0 0.30000000000000004 1e+20 1e-05 3.0");
}

TEST(JinjaExpressions, Arithmetic) {
    EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 * 3 ** 2 }}"), "3 -4 1 2 1024 18");
    EXPECT_EQ(render("{{ (1 + 2) * 3 }} {{ 1 - 2 - 3 }} {{ -(2) }} {{ 1.5 * 2 }}"), "9 -4 -2 3.0");
    EXPECT_EQ(render("{{ 'a' + 'b' }} {{ 'x' * 3 }} {{ [1] + [2] }} {{ 'n' ~ 1 ~ none }}"), "ab xxx [1, 2] n1None");
    EXPECT_NE(render_error("{{ 'a' + 1 }}").find("unsupported operand"), std::string::npos);
    EXPECT_NE(render_error("{{ 1 / 0 }}").find("division by zero"), std::string::npos);
    EXPECT_NE(render_error("{{ 9223372036854775807 + 1 }}").find("integer overflow"), std::string::npos);
    EXPECT_NE(render_error("{{ 'x' * 100000000000 }}").find("too large"), std::string::npos);
}

TEST(JinjaExpressions, ComparisonsLogicAndMembership) {
    EXPECT_EQ(render("{{ 1 < 2 }}{{ 2 <= 2 }}{{ 'a' < 'b' }}{{ 1 == 1.0 }}{{ 1 != 2 }}{{ [1, 2] == [1, 2] }}"),
              "TrueTrueTrueTrueTrueTrue");
    EXPECT_EQ(render("{{ not 1 }}{{ 0 or 'x' }}{{ 1 and 'y' }}{{ none or [] }}"), "Falsexy[]");
    EXPECT_EQ(render("{{ 2 in xs }}{{ 9 in xs }}{{ 9 not in xs }}{{ 'ell' in 'hello' }}{{ 'a' in d }}{{ 'z' not in d }}", kVars),
              "TrueFalseTrueTrueTrueTrue");
    EXPECT_EQ(render("{{ 'y' if 1 else 'n' }}{{ 'y' if 0 else 'n' }}[{{ 'y' if 0 }}]{{ 1 if 0 else 2 if 0 else 3 }}"), "yn[]3");
}

TEST(JinjaExpressions, AttributeAndItemAccess) {
    EXPECT_EQ(render("{{ d.a }}{{ d['b'] }}[{{ d.missing }}]{{ xs[0] }}{{ xs[-1] }}{{ xs.1 }}[{{ xs[10] }}]", kVars), "1two[]132[]");
    EXPECT_EQ(render("{{ ms[0].content }} {{ ms[1]['role'] }} {{ ms | length - 1 }}", kVars), "hi there assistant 1");
    EXPECT_EQ(render("{{ d.get('a') }} {{ d.get('z', 'dflt') }} {{ d.get('z') }} {{ d.keys() | list }} {{ d.values() | list }}", kVars),
              "1 dflt None ['a', 'b'] [1, 'two']");
}

TEST(JinjaExpressions, Slicing) {
    EXPECT_EQ(render("{{ xs[::-1] }} {{ xs[1:] }} {{ xs[:-1] }} {{ xs[::2] }} {{ xs[10:] }} {{ xs[-10:2] }} {{ xs[2:0:-1] }}", kVars),
              "[3, 2, 1] [2, 3] [1, 2] [1, 3] [] [1, 2] [3, 2]");
    EXPECT_EQ(render("{{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ 'héllo'[1] }} {{ 'héllo'[:2] }}"), "el olleh é hé");
}

TEST(JinjaStatements, IfElifElse) {
    const char* tmpl = "{% if x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %}";
    EXPECT_EQ(render(tmpl, {{"x", 1}}), "one");
    EXPECT_EQ(render(tmpl, {{"x", 2}}), "two");
    EXPECT_EQ(render(tmpl, {{"x", 5}}), "many");
}

TEST(JinjaStatements, ForLoopVariables) {
    EXPECT_EQ(render("{% for x in xs %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }} {% endfor %}", kVars),
              "01TrueFalse33 12FalseFalse32 23FalseTrue31 ");
    EXPECT_EQ(render("{% for m in ms %}{{ loop.previtem.role if loop.previtem is defined else '-' }}{{ loop.cycle('a', 'b') }}{% endfor %}", kVars),
              "-auserb");
    EXPECT_EQ(render("{% for x in xs %}{% for y in xs %}{{ loop.index }}{% endfor %}{{ loop.index }}|{% endfor %}", kVars),
              "1231|1232|1233|");
}

TEST(JinjaStatements, ForLoopFiltersElseBreakContinueUnpacking) {
    EXPECT_EQ(render("{% for x in xs if x > 1 %}{{ x }}/{{ loop.length }} {% endfor %}", kVars), "2/2 3/2 ");
    EXPECT_EQ(render("{% for x in [] %}{{ x }}{% else %}empty{% endfor %}"), "empty");
    EXPECT_EQ(render("{% for x in xs %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}{% if x == 3 %}{% break %}{% endif %}{% endfor %}", kVars), "13");
    EXPECT_EQ(render("{% for k, v in d | items %}{{ k }}={{ v }};{% endfor %}{% for k, v in d.items() %}{{ k }}{% endfor %}{% for k in d %}{{ k }}{% endfor %}", kVars),
              "a=1;b=two;abab");
    EXPECT_EQ(render("{% for c in 'hé' %}[{{ c }}]{% endfor %}{% for x in undefined_name %}x{% endfor %}"), "[h][é]");
}

TEST(JinjaStatements, SetScopingAndNamespace) {
    // A plain set inside a loop stays in the loop; namespace attributes carry out of it.
    EXPECT_EQ(render("{% set a = 0 %}{% for x in xs %}{% set a = x %}{% endfor %}{{ a }}", kVars), "0");
    EXPECT_EQ(render("{% if true %}{% set b = 5 %}{% endif %}{{ b }}"), "5");
    EXPECT_EQ(render("{% set ns = namespace(n=0, s='') %}{% for x in xs %}{% set ns.n = ns.n + x %}{% set ns.s = ns.s ~ x %}{% endfor %}{{ ns.n }} {{ ns.s }}", kVars),
              "6 123");
    EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.found = false %}{% for m in ms[::-1] %}{% if m.role == 'user' and not ns.found %}{% set ns.found = true %}{% set ns.last = m.content %}{% endif %}{% endfor %}{{ ns.last }}", kVars),
              "hi there");
    EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set s %}inner {{ a }}{% endset %}[{{ s }}]"), "12[inner 1]");
    EXPECT_EQ(render("{% set messages = messages[1:] %}{{ messages | length }}", {{"messages", {1, 2, 3}}}), "2");
    EXPECT_NE(render_error("{% set x = 1 %}{% set x.y = 2 %}").find("namespace"), std::string::npos);
}

TEST(JinjaStatements, MacrosAndFilterBlocks) {
    EXPECT_EQ(render("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}"),
              "Hi Bob! Hi Al?");
    EXPECT_EQ(render("{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * fact(n - 1) | int }}{% endif %}{% endmacro %}{{ fact(5) }}"), "120");
    EXPECT_EQ(render("{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}in{% endcall %}"), "[in]");
    EXPECT_EQ(render("{% filter upper %}shout {{ 'it' }}{% endfilter %}"), "SHOUT IT");
    EXPECT_EQ(render("{{ range(3) | list }}{{ range(1, 4) | list }}{{ range(5, 0, -2) | list }}"), "[0, 1, 2][1, 2, 3][5, 3, 1]");
}

TEST(JinjaFilters, StringsAndSequences) {
    EXPECT_EQ(render("{{ '  x  ' | trim }}|{{ 'AbC' | lower }}|{{ 'abc' | upper }}|{{ 'aXbX' | replace('X', '-') }}|{{ 3 | string }}|{{ '<b>' | safe }}"),
              "x|abc|ABC|a-b-|3|<b>");
    EXPECT_EQ(render("{{ xs | length }} {{ 'héllo' | length }} {{ d | count }} {{ xs | first }} {{ xs | last }} {{ xs | join(', ') }}", kVars),
              "3 5 2 1 3 1, 2, 3");
    EXPECT_EQ(render("{{ d | items | list }}", kVars), "[['a', 1], ['b', 'two']]");  // tuples print as lists
    EXPECT_EQ(render("{{ missing | default('dflt') }}|{{ '' | default('e', true) }}|{{ '' | default('e') }}|{{ none | d('n') }}"), "dflt|e||None");
    EXPECT_EQ(render("[{{ missing | trim }}][{{ missing | length }}][{{ missing | map('upper') | list }}][{{ missing | join(',') }}]"), "[][0][[]][]");
    EXPECT_NE(render_error("{{ missing | tojson }}").find("'missing' is undefined"), std::string::npos);
    EXPECT_EQ(render("{{ 'hello world' | capitalize }}|{{ 'hello big-world' | title }}|{{ 'a\nb\n\nc' | indent(2) }}|{{ '3' | int + 1 }}|{{ 2.567 | round(2) }}"),
              "Hello world|Hello Big-World|a\n  b\n\n  c|4|2.57");
    EXPECT_EQ(render("{{ xs | reverse | list }} {{ ['b', 'A', 'c'] | sort }} {{ [1, 2, 2, 1] | unique | list }} {{ xs | sum }} {{ xs | max }}", kVars),
              "[3, 2, 1] ['A', 'b', 'c'] [1, 2] 6 3");
    EXPECT_EQ(render("{{ ms | map(attribute='role') | join(',') }}|{{ ms | selectattr('role', 'equalto', 'user') | list | length }}|{{ xs | select('odd') | list }}|{{ xs | reject('odd') | list }}|{{ xs | map('string') | join }}", kVars),
              "user,assistant|1|[1, 3]|[2]|123");
}

TEST(JinjaFilters, ToJson) {
    EXPECT_EQ(render("{{ d | tojson }}", kVars), "{\"a\": 1, \"b\": \"two\"}");
    EXPECT_EQ(render("{{ {'k': [1, none, true, 1.5], 'e': {}} | tojson(indent=2) }}"),
              "{\n  \"k\": [\n    1,\n    null,\n    true,\n    1.5\n  ],\n  \"e\": {}\n}");
    // Not HTML-escaped, not ASCII-escaped (Hugging Face's tojson); control characters escaped.
    EXPECT_EQ(render("{{ '<é>\"\\\\\n\t' | tojson }}"), "\"<é>\\\"\\\\\\n\\t\"");
    EXPECT_EQ(render("{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}"), "{\"a\": 2, \"b\": 1}");
}

TEST(JinjaTests, TypeAndValueTests) {
    EXPECT_EQ(render("{{ x is defined }}{{ y is defined }}{{ y is undefined }}{{ none is none }}{{ x is not none }}", {{"x", 1}}),
              "TrueFalseTrueTrueTrue");
    EXPECT_EQ(render("{{ 'a' is string }}{{ d is mapping }}{{ xs is mapping }}{{ xs is iterable }}{{ xs is sequence }}{{ 1 is number }}{{ 'a' is not string }}", kVars),
              "TrueTrueFalseTrueTrueTrueFalse");
    EXPECT_EQ(render("{{ false is false }}{{ true is true }}{{ 1 is true }}{{ 0 is false }}{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 3 is in [1, 3] }}{{ 'x' is eq 'x' }}"),
              "TrueTrueFalseFalseTrueTrueTrueTrueTrue");
}

TEST(JinjaMethods, StringMethods) {
    EXPECT_EQ(render("{{ 'Hello'.startswith('He') }}{{ 'Hello'.endswith('lo') }}{{ 'Hello'.startswith(('x', 'H')) }}"), "TrueTrueTrue");
    EXPECT_EQ(render("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }} {{ 'a-b-c'.rsplit('-', 1) }}"),
              "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c'] ['a-b', 'c']");
    EXPECT_EQ(render("[{{ '  x '.strip() }}][{{ 'xxhixx'.strip('x') }}][{{ '\n\nhi\n'.lstrip('\n') }}][{{ 'hi  '.rstrip() }}]"), "[x][hi][hi\n][hi]");
    EXPECT_EQ(render("{{ 'Hi'.lower() }}{{ 'Hi'.upper() }}{{ 'aXa'.replace('a', 'b') }} {{ 'hello world-foo'.title() }}"), "hiHIbXb Hello World-Foo");
    EXPECT_EQ(render("{{ c.split('</think>')[-1].lstrip('\\n') }}", {{"c", "<think>x</think>\n\nanswer"}}), "answer");
}

TEST(JinjaWhitespace, TrimAndLstripBlocks) {
    // Block tags eat the newline after them and the indentation before them.
    EXPECT_EQ(render("<ul>\n  {% for x in xs %}\n  <li>{{ x }}</li>\n  {% endfor %}\n</ul>", kVars),
              "<ul>\n  <li>1</li>\n  <li>2</li>\n  <li>3</li>\n</ul>");
    EXPECT_EQ(render("a\n  {# note #}\nb"), "a\nb");
    // `{{ }}` is not a block: it keeps its surroundings.
    EXPECT_EQ(render("  {{ 'x' }}\ny"), "  x\ny");
}

TEST(JinjaWhitespace, MinusAndPlusMarkers) {
    EXPECT_EQ(render("a  {%- if true -%}  b  {%- endif -%}  c"), "abc");
    EXPECT_EQ(render("x \n {{- 'y' -}} \n z"), "xyz");
    EXPECT_EQ(render("{%- for x in xs -%}\n  {{ x }}\n{%- endfor %}", kVars), "123");
    EXPECT_EQ(render("  {%+ if true +%}\nkeep{% endif %}"), "  \nkeep");
    EXPECT_EQ(render("{{- 'a' }}\n\n{#- c -#}\n\n{{ 'b' }}"), "ab");
}

TEST(JinjaErrors, SyntaxErrorsNameTheLine) {
    auto syntax_error = [](const std::string& source) {
        try {
            qllm::jinja::Template t(source);
        } catch (const qllm::Error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_NE(syntax_error("ok\n{% if x %}\nno end").find("line 3"), std::string::npos);
    EXPECT_NE(syntax_error("{% if x %}{% endfor %}").find("endif"), std::string::npos);
    EXPECT_NE(syntax_error("{{ 'unterminated }}").find("unterminated"), std::string::npos);
    EXPECT_NE(syntax_error("\n\n{{ a + }}").find("line 3"), std::string::npos);
    EXPECT_NE(syntax_error("{% frobnicate %}").find("frobnicate"), std::string::npos);
    EXPECT_NE(syntax_error("{{ " + std::string(500, '(') + "1" + std::string(500, ')') + " }}").find("nested too deeply"), std::string::npos);
}

TEST(JinjaErrors, RenderErrorsNameTheLineAndSource) {
    std::string error = render_error("line one\n{{ missing.attribute }}");
    EXPECT_NE(error.find("line 2"), std::string::npos) << error;
    EXPECT_NE(error.find("'missing' is undefined"), std::string::npos) << error;
    EXPECT_NE(error.find("{{ missing.attribute }}"), std::string::npos) << error;
    EXPECT_NE(render_error("{{ 1 | no_such_filter }}").find("no filter named 'no_such_filter'"), std::string::npos);
    EXPECT_EQ(render("{{ 'ok' if true else (1 | no_such_filter) }}"), "ok");  // unused branches may be unsupported
    EXPECT_NE(render_error("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("recursed"), std::string::npos);
    EXPECT_NE(render_error("{{ none.x.y }}").find("has no attribute 'x'"), std::string::npos);
    EXPECT_NE(render_error("{% for x in 5 %}{% endfor %}").find("not iterable"), std::string::npos);
}

TEST(JinjaErrors, RaiseException) {
    try {
        render("\n{% if true %}{{ raise_exception('Roles must alternate') }}{% endif %}");
        FAIL() << "expected an exception";
    } catch (const qllm::jinja::RaisedException& e) {
        std::string what = e.what();
        EXPECT_NE(what.find("Roles must alternate"), std::string::npos) << what;
        EXPECT_NE(what.find("line 2"), std::string::npos) << what;
    }
}

TEST(JinjaGlobals, StrftimeNowUsesTheGivenClock) {
    qllm::jinja::RenderOptions options;
    options.now = std::chrono::system_clock::from_time_t(1721995200);  // 2024-07-26 12:00 UTC
    EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}", Json::object(), options), "26 Jul 2024");
    EXPECT_EQ(render("{{ strftime_now('%Y') | length }}"), "4");  // the real clock
}

// ---- official model templates (as published in the models' tokenizer_config.json) ----------

const char* const kGemma3Template = R"TEMPLATE({{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '

' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '

' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '
' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>
' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model
'}}
{%- endif -%}
)TEMPLATE";

const char* const kQwen25Template = R"TEMPLATE({%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
)TEMPLATE";

const char* const kLlama32Template = R"TEMPLATE({{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
)TEMPLATE";

TEST(JinjaOfficial, Gemma3MatchesBuiltinGemma) {
    auto path = qllm::test::shared_dir() / "golden/chat/templates.json";
    QLLM_REQUIRE_SHARED(path);
    auto golden = load_golden();
    RenderParams params;
    params.bos_token = "<bos>";
    ChatTemplate tmpl(kGemma3Template);
    EXPECT_EQ(tmpl.family(), "gemma");
    EXPECT_EQ(tmpl.render(golden_conversation(golden), params), golden["builtin"]["gemma"].get<std::string>());
    // Gemma 3 itself insists on alternating roles.
    EXPECT_THROW(qllm::jinja::Template(kGemma3Template).render(to_value(Json{{"messages", {{{"role", "user"}, {"content", "a"}}, {{"role", "user"}, {"content", "b"}}}}}).as_dict()),
                 qllm::jinja::RaisedException);
}

TEST(JinjaOfficial, Qwen25PlainAndToolCalls) {
    auto path = qllm::test::shared_dir() / "golden/chat/templates.json";
    QLLM_REQUIRE_SHARED(path);
    auto golden = load_golden();
    EXPECT_EQ(ChatTemplate(kQwen25Template).render(golden_conversation(golden)), golden["builtin"]["chatml"].get<std::string>());

    Json vars = {
        {"messages",
         {{{"role", "user"}, {"content", "What time is it?"}},
          {{"role", "assistant"}, {"content", ""},
           {"tool_calls", {{{"type", "function"}, {"function", {{"name", "get_time"}, {"arguments", {{"tz", "UTC"}}}}}}}}},
          {{"role", "tool"}, {"content", "12:00"}}}},
        {"add_generation_prompt", true},
    };
    EXPECT_EQ(render(kQwen25Template, vars),
              "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
              "<|im_start|>user\nWhat time is it?<|im_end|>\n"
              "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}\n</tool_call><|im_end|>\n"
              "<|im_start|>user\n<tool_response>\n12:00\n</tool_response><|im_end|>\n"
              "<|im_start|>assistant\n");
}

TEST(JinjaOfficial, Llama32DateAndToolsInUserMessage) {
    qllm::jinja::RenderOptions options;
    options.now = std::chrono::system_clock::from_time_t(1721995200);  // 2024-07-26 12:00 UTC
    Json vars = {
        {"messages", {{{"role", "system"}, {"content", " Be brief. "}}, {{"role", "user"}, {"content", "Time?"}}}},
        {"add_generation_prompt", true},
        {"bos_token", "<|begin_of_text|>"},
    };
    EXPECT_EQ(render(kLlama32Template, vars, options),
              "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
              "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nTime?<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
    vars["tools"] = {{{"type", "function"}, {"function", {{"name", "get_time"}, {"parameters", Json::object()}}}}};
    EXPECT_EQ(render(kLlama32Template, vars, options),
              "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
              "Environment: ipython\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\n"
              "Given the following functions, please respond with a JSON for a function call "
              "with its proper arguments that best answers the given prompt.\n\n"
              "Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its value}."
              "Do not use variables.\n\n"
              "{\n    \"type\": \"function\",\n    \"function\": {\n        \"name\": \"get_time\",\n        \"parameters\": {}\n    }\n}\n\n"
              "Time?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
    EXPECT_EQ(ChatTemplate(kLlama32Template).family(), "llama3");
}

TEST(JinjaOfficial, Qwen3ThinkingBlocks) {
    auto path = qllm::test::shared_dir() / "golden/tokenizer/qwen3-vocab.gguf";
    QLLM_REQUIRE_SHARED(path);
    std::string source = read_gguf_template(path.string()).source;
    Json vars = {
        {"messages",
         {{{"role", "user"}, {"content", "Hi"}}, {{"role", "assistant"}, {"content", "<think>\nreasoning\n</think>\n\nHello!"}}}},
        {"add_generation_prompt", false},
    };
    // The last assistant turn after the last user query keeps its reasoning.
    EXPECT_EQ(render(source, vars), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\nreasoning\n</think>\n\nHello!<|im_end|>\n");
    vars["messages"].push_back({{"role", "user"}, {"content", "Bye"}});
    vars["add_generation_prompt"] = true;
    vars["enable_thinking"] = false;
    // Earlier turns lose it; enable_thinking=false pre-fills an empty think block.
    EXPECT_EQ(render(source, vars),
              "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
              "<|im_start|>assistant\n<think>\n\n</think>\n\n");
}

}  // namespace
