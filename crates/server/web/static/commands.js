// Slash commands, as in the terminal client. Anything unknown goes to the server
// as it is (`/mode #c +o bob` → `MODE #c +o bob`).

import { isChannel } from './irc.js';

const HELP = [
  ['/join #channel [key]', 'join a channel'],
  ['/part [#channel] [reason]', 'leave a channel (the current one by default)'],
  ['/msg nick text', 'send a private message'],
  ['/query nick', 'open a private conversation'],
  ['/me text', 'describe an action'],
  ['/nick newnick', 'change your nickname'],
  ['/topic [text]', 'show or set the channel topic'],
  ['/whois nick', 'who is this?'],
  ['/away [reason]', 'mark yourself away (no reason: back)'],
  ['/list [filter]', 'browse channels'],
  ['/close', 'close the current buffer'],
  ['/quit [reason]', 'disconnect'],
  ['/help', 'this list'],
  ['//text', 'send text starting with a slash'],
];

const word = (text) => {
  const trimmed = text.trimStart();
  const space = trimmed.indexOf(' ');
  return space === -1 ? [trimmed, ''] : [trimmed.slice(0, space), trimmed.slice(space + 1)];
};

/**
 * Runs one input line. `ctx`: { client, buffer (active), ui } where ui has
 * openChannelList(filter), showHelp(lines), quit(reason).
 * Returns false when the text is a plain message the caller should send.
 */
export function runCommand(text, { client, buffer, ui }) {
  if (!text.startsWith('/') || text.startsWith('//')) return false;
  const [name, args] = word(text.slice(1));
  const command = name.toLowerCase();
  const inChannel = buffer?.isChannel;
  const usage = (message) => {
    client.system(message, null, { error: true });
    return true;
  };
  const needBuffer = () => {
    if (!buffer) client.system('Open a channel or conversation first.');
    return Boolean(buffer);
  };
  switch (command) {
    case 'join':
    case 'j': {
      const [channel, key] = args.trim().split(/\s+/);
      if (!channel) return usage('Usage: /join #channel [key]');
      client.join(isChannel(channel) ? channel : `#${channel}`, key);
      return true;
    }
    case 'part':
    case 'leave': {
      const [first, rest] = word(args);
      const target = isChannel(first) ? client.buffers.get(first) : inChannel ? buffer : null;
      const reason = isChannel(first) ? rest : args;
      if (target) client.part(target, reason.trim());
      else usage('Not in a channel: /part #channel');
      return true;
    }
    case 'msg':
    case 'query': {
      const [nick, message] = word(args);
      if (!nick) return usage(`Usage: /${command} nick${command === 'msg' ? ' text' : ''}`);
      const target = isChannel(nick) ? client.buffers.get(nick) : client.openQuery(nick);
      if (target && message.trim()) client.say(target, message);
      else if (!target) client.send('PRIVMSG', nick, message);
      return true;
    }
    case 'me':
      if (needBuffer() && args.trim()) client.say(buffer, args, { action: true });
      return true;
    case 'nick':
      if (!args.trim()) return usage('Usage: /nick newnick');
      client.send('NICK', args.trim().split(/\s+/)[0]);
      return true;
    case 'topic': {
      if (!needBuffer()) return true;
      const [first, rest] = word(args);
      const channel = isChannel(first) ? first : buffer.name;
      const topic = isChannel(first) ? rest : args;
      const known = client.buffers.get(channel)?.topic; // the named channel's, not the shown one's
      if (topic.trim()) client.send('TOPIC', channel, topic);
      else client.system(known ? `Topic: ${known}` : 'No topic is set.', channel);
      return true;
    }
    case 'whois':
      if (!args.trim()) return usage('Usage: /whois nick');
      client.send('WHOIS', args.trim().split(/\s+/)[0]);
      return true;
    case 'away':
      if (args.trim()) client.send('AWAY', args.trim());
      else client.send('AWAY');
      return true;
    case 'quit':
      ui.quit(args.trim() || 'Leaving');
      return true;
    case 'list':
      ui.openChannelList(args.trim());
      return true;
    case 'close':
      if (needBuffer()) client.close(buffer);
      return true;
    case 'help':
      ui.showHelp(HELP.map(([usage, what]) => `${usage} — ${what}`));
      return true;
    default: {
      const line = `${name.toUpperCase()}${args ? ` ${args}` : ''}`;
      if (!client.conn.connected || !client.conn.sendRaw(line)) usage('Not connected.');
      return true;
    }
  }
}
