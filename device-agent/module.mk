# device-agent/ - the agent library (libidprov-agent.a, agent.[ch]) and its
# thin CLI idprov-agent. The library is what an application or a driver
# package embeds; it links formats/io and formats only.
PROJECT_LIBS += agent
LIBS_agent += device-agent/agent.c

PROGS += idprov-agent
idprov-agent_SRCS := device-agent/agent_main.c
idprov-agent_LIBS := agent io avahicore formats
idprov-agent_PKGS := openssl libcjson libcurl avahi-client
MANPAGES += docs/man/idprov-agent.8
