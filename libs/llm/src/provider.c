/* provider.c -- the providers reached through the OpenAI chat-completions API: default base
 * URLs, the variables that move them, and the variables holding their keys. */
#include "llm_internal.h"

#include <string.h>

/* The base URL variables are the ones each provider's own SDK reads (OpenAI's, Groq's and
 * Cerebras' clients; OpenRouter and DeepSeek are reached with the OpenAI SDK, and these are the
 * names their guides use). Local servers have none: config.yaml's `host:` places them. */
static const mr_llm_provider providers[] = {
    {"openai", "https://api.openai.com/v1", "OPENAI_BASE_URL", "OPENAI_API_KEY"},
    {"openrouter", "https://openrouter.ai/api/v1", "OPENROUTER_BASE_URL", "OPENROUTER_API_KEY"},
    {"ollama", "http://localhost:11434/v1", NULL, NULL},
    {"llama_cpp", "http://localhost:8080/v1", NULL, NULL},
    {"vllm", "http://localhost:8000/v1", NULL, NULL},
    {"deepseek", "https://api.deepseek.com/v1", "DEEPSEEK_BASE_URL", "DEEPSEEK_API_KEY"},
    {"groq", "https://api.groq.com/openai/v1", "GROQ_BASE_URL", "GROQ_API_KEY"},
    {"cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_BASE_URL", "CEREBRAS_API_KEY"},
};

const mr_llm_provider *mr_llm_provider_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof providers / sizeof *providers; i++)
        if (strcmp(providers[i].name, name) == 0)
            return &providers[i];
    return NULL;
}
