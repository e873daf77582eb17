"""LLM bridge core (ROS-free): emotion context, prompts and memory, LLM backends, request queue."""
from .backends import ChatBackend, ChatResult, OllamaBackend, OpenAICompatibleBackend, create_backend
from .bridge import BridgeReply, LLMBridge
from .context import ContextConfig, EmotionContext, EmotionContextTracker
from .prompt import ConversationMemory, PromptBuilder, neutralise_markers

__all__ = [
    "BridgeReply", "ChatBackend", "ChatResult", "ContextConfig", "ConversationMemory", "EmotionContext",
    "EmotionContextTracker", "LLMBridge", "OllamaBackend", "OpenAICompatibleBackend", "PromptBuilder",
    "create_backend", "neutralise_markers",
]
