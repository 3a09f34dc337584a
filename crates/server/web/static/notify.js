// Attention: the document title's unread count, a favicon badge when someone
// mentions you, and desktop notifications while the page is hidden.

const BADGE_SIZE = 64;

export class Attention {
  constructor(iconLink) {
    this.iconLink = iconLink;
    this.plainIcon = iconLink.href;
    this.badged = null;
    this.badgedIcon = null;
    this.iconImage = new Image();
    this.iconImage.src = this.plainIcon;
  }

  /** Updates the title (`(3) #lobby — palaver`) and the favicon badge. */
  update(activeName, unread, mentions) {
    const name = activeName ? `${activeName} — palaver` : 'palaver';
    document.title = unread > 0 ? `(${unread}) ${name}` : name;
    const wantBadge = mentions > 0;
    if (wantBadge === this.badged) return;
    this.badged = wantBadge;
    this.iconLink.href = wantBadge ? this.badgeIcon() : this.plainIcon;
  }

  badgeIcon() {
    if (this.badgedIcon) return this.badgedIcon;
    const canvas = document.createElement('canvas');
    canvas.width = BADGE_SIZE;
    canvas.height = BADGE_SIZE;
    const ctx = canvas.getContext('2d');
    if (this.iconImage.complete && this.iconImage.naturalWidth) {
      ctx.drawImage(this.iconImage, 0, 0, BADGE_SIZE, BADGE_SIZE);
    } else {
      ctx.fillStyle = '#4f46e5';
      ctx.beginPath();
      ctx.arc(32, 32, 28, 0, Math.PI * 2);
      ctx.fill();
    }
    ctx.fillStyle = '#e11d48';
    ctx.strokeStyle = '#ffffff';
    ctx.lineWidth = 5;
    ctx.beginPath();
    ctx.arc(46, 18, 16, 0, Math.PI * 2);
    ctx.fill();
    ctx.stroke();
    const url = canvas.toDataURL('image/png');
    if (this.iconImage.complete) this.badgedIcon = url; // cache only the final drawing
    return url;
  }

  static supported() {
    return 'Notification' in window;
  }

  static permission() {
    return Attention.supported() ? Notification.permission : 'denied';
  }

  static async requestPermission() {
    if (!Attention.supported()) return 'denied';
    return Notification.requestPermission();
  }

  /** A desktop notification, only while the page is hidden and permission was given. */
  notify(title, body, onClick) {
    if (!document.hidden || Attention.permission() !== 'granted') return;
    const n = new Notification(title, { body, tag: title, icon: this.plainIcon });
    n.onclick = () => {
      window.focus();
      onClick();
      n.close();
    };
  }
}
